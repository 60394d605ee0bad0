package agent

import (
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
)

func apiErr(status int, msg string, header http.Header) error {
	return &openai.Error{StatusCode: status, Message: msg, Response: &http.Response{StatusCode: status, Header: header}}
}

func TestRetryPolicy(t *testing.T) {
	tests := []struct {
		name        string
		err         error
		retry       bool
		wait        time.Duration // for attempt 1 with a 100ms base
		unsupported bool
	}{
		{"429 honours Retry-After seconds", apiErr(429, "slow down", http.Header{"Retry-After": {"2"}}), true, 2 * time.Second, false},
		{"429 honours Retry-After-Ms", apiErr(429, "slow down", http.Header{"Retry-After-Ms": {"250"}}), true, 250 * time.Millisecond, false},
		{"500 backs off exponentially", apiErr(500, "boom", http.Header{}), true, 200 * time.Millisecond, false},
		{"a huge Retry-After is capped", apiErr(503, "later", http.Header{"Retry-After": {"86400"}}), true, time.Minute, false},
		{"400 is final", apiErr(400, "bad model", http.Header{}), false, 200 * time.Millisecond, false},
		{"400 about streaming asks for the fallback", apiErr(400, "Streaming is not supported for this model", http.Header{}), false, 200 * time.Millisecond, true},
		{"a dropped connection is retried", fmt.Errorf("read: %w", errors.New("connection reset by peer")), true, 200 * time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryable(tt.err); got != tt.retry {
				t.Errorf("retryable = %v, want %v", got, tt.retry)
			}
			if got := backoff(tt.err, 100*time.Millisecond, 1); got != tt.wait {
				t.Errorf("backoff = %v, want %v", got, tt.wait)
			}
			if got := streamingUnsupported(tt.err); got != tt.unsupported {
				t.Errorf("streamingUnsupported = %v, want %v", got, tt.unsupported)
			}
		})
	}
}

func TestUpstreamErrCodes(t *testing.T) {
	if le := upstreamErr("p", apiErr(429, "quota", nil)); le.Code != "rate_limit_exceeded" {
		t.Errorf("429 → %q, want rate_limit_exceeded", le.Code)
	}
	if le := upstreamErr("p", apiErr(502, "bad gateway", nil)); le.Code != "server_error" || le.Message == "" {
		t.Errorf("502 → %+v, want server_error with a message", le)
	}
	if le := upstreamErr("p", errors.New("dial tcp: connection refused")); le.Code != "server_error" {
		t.Errorf("network error → %q, want server_error", le.Code)
	}
}
