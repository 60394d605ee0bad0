package agent

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
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
		{"a reset connection is retried", fmt.Errorf("read: %w", syscall.ECONNRESET), true, 200 * time.Millisecond, false},
		{"a cut-off body is retried", fmt.Errorf("read body: %w", io.ErrUnexpectedEOF), true, 200 * time.Millisecond, false},
		{"an error is classified by type, not by its text", errors.New("connection reset by peer"), false, 200 * time.Millisecond, false},
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

// TestRetryableRealFailures checks the classification against the errors
// openai-go really returns when an upstream drops the connection, before
// and during the answer.
func TestRetryableRealFailures(t *testing.T) {
	tests := []struct {
		name  string
		serve func(c net.Conn)
	}{
		{"closed before answering", func(c net.Conn) {}},
		{"body cut short", func(c net.Conn) {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"id\":")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					buf := make([]byte, 64<<10)
					_, _ = c.Read(buf) // the request
					tt.serve(c)
					c.Close()
				}
			}()
			client := openai.NewClient(option.WithBaseURL("http://"+ln.Addr().String()+"/v1/"), option.WithAPIKey("k"), option.WithMaxRetries(0))
			_, err = client.Chat.Completions.New(testCtx(), openai.ChatCompletionNewParams{Model: "m",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
			if err == nil {
				t.Fatal("request succeeded, want an error")
			}
			if !retryable(err) {
				t.Errorf("retryable(%v) = false, want true (%T)", err, err)
			}
		})
	}
}
