// Package webhook delivers function calls to the HTTP endpoints that answer
// them: the Standard Webhooks signer, the webhook secrets, the address
// guard that keeps deliveries away from the server's own network, and the
// delivery client with its retries.
//
// See https://www.standardwebhooks.com for the signing scheme receivers
// verify: any of that specification's libraries accepts our deliveries.
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// SecretPrefix starts every webhook secret, as in the Standard Webhooks
// libraries (and Svix, where the scheme comes from).
const SecretPrefix = "whsec_"

// Secret sizes accepted when a client brings its own: at least 24 bytes
// (the spec's minimum for a symmetric key) and at most 64.
const (
	minKeyBytes = 24
	maxKeyBytes = 64
)

// NewSecret returns a fresh secret: whsec_ and the base64 of 32 random
// bytes.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// Hint is what is shown of a secret after the response that generated it:
// enough to tell two apart, too little to sign with.
func Hint(secret string) string {
	if len(secret) <= len(SecretPrefix)+8 {
		return SecretPrefix + "…"
	}
	return secret[:len(SecretPrefix)+4] + "…" + secret[len(secret)-4:]
}

// Key returns the signing key of a secret: the base64-decoded part after
// whsec_. A secret without the prefix, not base64, or of a size outside
// 24..64 bytes is an error a client can be shown.
func Key(secret string) ([]byte, error) {
	rest, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("a webhook secret starts with %q followed by base64", SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return nil, errors.New("the part of a webhook secret after whsec_ must be standard base64")
	}
	if len(key) < minKeyBytes || len(key) > maxKeyBytes {
		return nil, fmt.Errorf("a webhook secret's key must be %d to %d bytes, not %d", minKeyBytes, maxKeyBytes, len(key))
	}
	return key, nil
}

// Sign returns the webhook-signature header value for one delivery:
// v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>.
func Sign(key []byte, id string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Verify reports whether header (one or more space-separated "v1,<sig>"
// entries) holds a valid signature of the delivery. Receivers in Go can
// use it; the tests' receivers do.
func Verify(key []byte, id string, timestamp int64, body []byte, header string) bool {
	want := Sign(key, id, timestamp, body)
	for _, sig := range strings.Fields(header) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}

// MessageID is the webhook-id of the delivery of a tool call. It is derived
// from the call's id, so every attempt, before and after a restart, carries
// the same one and a receiver can deduplicate on it.
func MessageID(callID string) string { return "msg_" + callID }
