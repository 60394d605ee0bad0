package apitest

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"regexp"
	"testing"
)

// TestSpecCopyUnchanged checks that the OpenAPI document in testdata is the
// one SOURCE.md describes: the schemas are the contract, so an edit to them
// must be deliberate (patch in patchSpec instead, with a reason).
func TestSpecCopyUnchanged(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	source, err := os.ReadFile("../testdata/SOURCE.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("Resulting sha256 `([0-9a-f]{64})`").FindSubmatch(source)
	if m == nil {
		t.Fatal("SOURCE.md gives no resulting sha256")
	}
	sum := sha256.Sum256(doc)
	if got := hex.EncodeToString(sum[:]); got != string(m[1]) {
		t.Errorf("sha256 of %s = %s, SOURCE.md says %s", specPath, got, m[1])
	}
}
