package webhook

import (
	"encoding/base64"
	"strings"
	"testing"
)

// The Standard Webhooks specification's published test vector (the
// reference libraries' TestWebhookSign and the Svix manual-verification
// docs): matching it is what lets receivers verify our deliveries with any
// of that specification's libraries.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignVector(t *testing.T) {
	key, err := Key(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := Sign(key, vectorID, vectorTimestamp, []byte(vectorBody)); got != vectorSignature {
		t.Fatalf("Sign = %s, want %s", got, vectorSignature)
	}
	if !Verify(key, vectorID, vectorTimestamp, []byte(vectorBody), vectorSignature) {
		t.Fatal("Verify rejected the spec's vector")
	}
	// The reference tests' multi-signature header: any valid entry passes.
	multi := "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= " + vectorSignature
	if !Verify(key, vectorID, vectorTimestamp, []byte(vectorBody), multi) {
		t.Fatal("Verify rejected a header holding the valid signature among others")
	}
	// Each signed part matters.
	for name, c := range map[string]struct {
		id   string
		ts   int64
		body string
		sig  string
	}{
		"the reference tests' invalid signature": {vectorID, vectorTimestamp, vectorBody, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="},
		"another id":                             {"msg_other", vectorTimestamp, vectorBody, vectorSignature},
		"another timestamp":                      {vectorID, vectorTimestamp + 1, vectorBody, vectorSignature},
		"another body":                           {vectorID, vectorTimestamp, `{"test": 2432232315}`, vectorSignature},
		"no v1 prefix":                           {vectorID, vectorTimestamp, vectorBody, strings.TrimPrefix(vectorSignature, "v1,")},
	} {
		if Verify(key, c.id, c.ts, []byte(c.body), c.sig) {
			t.Errorf("%s: Verify accepted it", name)
		}
	}
}

func TestSecrets(t *testing.T) {
	s := NewSecret()
	if !strings.HasPrefix(s, SecretPrefix) {
		t.Fatalf("NewSecret = %q, want the whsec_ prefix", s)
	}
	key, err := Key(s)
	if err != nil || len(key) != 32 {
		t.Fatalf("Key(NewSecret()) = %d bytes, %v; want 32 bytes", len(key), err)
	}
	if NewSecret() == s {
		t.Fatal("two secrets are equal")
	}
	hint := Hint(s)
	if !strings.HasPrefix(hint, "whsec_") || !strings.HasSuffix(hint, s[len(s)-4:]) || len(hint) >= len(s)/2 {
		t.Fatalf("Hint = %q: want whsec_, a few characters, the last four", hint)
	}
	for _, bad := range []string{
		"",
		"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", // no prefix
		"whsec_not base64!",                // not base64
		"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 16)), // too short
		"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65)), // too long
	} {
		if _, err := Key(bad); err == nil {
			t.Errorf("Key(%q) accepted it", bad)
		}
	}
	if MessageID("call_abc") != MessageID("call_abc") || MessageID("call_abc") == MessageID("call_abd") {
		t.Fatal("MessageID is not a function of the call id")
	}
}
