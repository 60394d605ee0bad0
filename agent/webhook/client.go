package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of one delivery.
const (
	// MaxOutput bounds the output taken from a response body.
	MaxOutput = 512 << 10
	// excerptBytes bounds the response excerpt recorded per attempt.
	excerptBytes = 2048
	// maxBackoff caps the wait between attempts.
	maxBackoff = 5 * time.Second
)

// Payload is the JSON body of a function call delivery.
type Payload struct {
	Type        string          `json:"type"` // always "function_call"
	ToolCallID  string          `json:"tool_call_id"`
	Function    PayloadFunction `json:"function"`
	RunID       string          `json:"run_id"`
	ThreadID    string          `json:"thread_id"`
	AssistantID string          `json:"assistant_id"`
	CreatedAt   int64           `json:"created_at"`
}

// PayloadFunction is the called function: its name and the model's raw
// JSON arguments, as a string, as the Assistants API shows them.
type PayloadFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// Target is where and how one call is delivered.
type Target struct {
	URL        string
	Secret     string        // whsec_…
	Timeout    time.Duration // per attempt, the response body included
	MaxRetries int           // attempts after the first
}

// Attempt is one HTTP attempt of a delivery, as recorded for the run view.
type Attempt struct {
	N        int           // 1 for the first attempt
	Status   int           // the HTTP status; 0 when no response came
	Latency  time.Duration // from sending to the end of the body (or the failure)
	Response string        // an excerpt of the response body
	Err      string        // what went wrong; "" for a 2xx
}

// Failed is the error Deliver returns after the last attempt failed. Its
// message says what happened, for the model's {"error": …} output.
type Failed struct {
	Attempts int
	Last     string
	Refused  bool // the address was refused: not retried
}

func (e *Failed) Error() string {
	if e.Attempts == 1 {
		return "webhook delivery failed: " + e.Last
	}
	return fmt.Sprintf("webhook delivery failed after %d attempts: %s", e.Attempts, e.Last)
}

// Client delivers signed calls. It is safe for concurrent use.
type Client struct {
	guard   *Guard
	http    *http.Client
	backoff time.Duration
	now     func() time.Time
}

// Option configures a Client.
type Option func(*Client)

// WithBackoff sets the wait before the first retry (doubled for each one
// after it, capped at 5s); tests shorten it.
func WithBackoff(d time.Duration) Option { return func(c *Client) { c.backoff = d } }

// NewClient returns a client whose every connection goes through guard.
// It uses no proxy (a proxy would connect where the guard cannot see) and
// follows no redirect.
func NewClient(guard *Guard, opts ...Option) *Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           guard.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	c := &Client{
		guard: guard,
		http: &http.Client{
			Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		backoff: 250 * time.Millisecond,
		now:     time.Now,
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Guard returns the client's address guard, for checking URLs when they
// are configured.
func (c *Client) Guard() *Guard { return c.guard }

// Deliver posts body to t.URL signed with id, retrying non-2xx responses,
// timeouts and connection errors up to t.MaxRetries times with short
// exponential backoff, every attempt with the same webhook-id. onAttempt,
// if set, sees every attempt as it ends. It returns the output of the
// first 2xx response, or a *Failed after the last attempt, or ctx's error
// when ctx ends first.
func (c *Client) Deliver(ctx context.Context, t Target, id string, body []byte, onAttempt func(Attempt)) (string, error) {
	key, err := Key(t.Secret)
	if err != nil {
		return "", &Failed{Attempts: 0, Last: err.Error()}
	}
	if _, err := c.guard.CheckURL(t.URL); err != nil {
		return "", &Failed{Attempts: 0, Last: err.Error(), Refused: true}
	}
	wait := c.backoff
	for n := 1; ; n++ {
		a, output, refusedAddr := c.attempt(ctx, t, key, id, body)
		a.N = n
		if onAttempt != nil {
			onAttempt(a)
		}
		if a.Err == "" {
			return output, nil
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		// A refused address stays refused: retrying cannot help.
		if refusedAddr || n > t.MaxRetries {
			return "", &Failed{Attempts: n, Last: a.Err, Refused: refusedAddr}
		}
		// Jitter keeps many failing calls from retrying in lockstep.
		d := wait/2 + rand.N(wait/2+1)
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(d):
		}
		wait = min(wait*2, maxBackoff)
	}
}

// attempt makes one signed POST and reads the response. refusedAddr is
// set when the guard refused the address it would have connected to.
func (c *Client) attempt(ctx context.Context, t Target, key []byte, id string, body []byte) (a Attempt, output string, refusedAddr bool) {
	timeout := t.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, t.URL, bytes.NewReader(body))
	if err != nil {
		a.Err = err.Error()
		return a, "", false
	}
	ts := c.now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "assistantd-webhook/1")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", Sign(key, id, ts, body))
	resp, err := c.http.Do(req)
	if err != nil {
		a.Latency = time.Since(start)
		var re *RefusedError
		if errors.As(err, &re) {
			a.Err = re.Error()
			return a, "", true
		}
		a.Err = describe(err, actx, ctx, timeout)
		return a, "", false
	}
	defer resp.Body.Close()
	a.Status = resp.StatusCode
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxOutput+1))
	a.Latency = time.Since(start)
	a.Response = cut(raw, excerptBytes)
	switch {
	case err != nil:
		a.Err = "reading the response: " + describe(err, actx, ctx, timeout)
		return a, "", false
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		a.Err = fmt.Sprintf("HTTP %d: redirects are not followed", resp.StatusCode)
		return a, "", false
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		a.Err = fmt.Sprintf("HTTP %d", resp.StatusCode)
		if a.Response != "" {
			a.Err += ": " + cut([]byte(a.Response), 200)
		}
		return a, "", false
	}
	return a, Output(raw), false
}

// describe turns a transport error into what happened, in words: a
// timeout, a refused connection.
func describe(err error, attemptCtx, parent context.Context, timeout time.Duration) string {
	switch {
	case parent.Err() != nil:
		return parent.Err().Error()
	case errors.Is(attemptCtx.Err(), context.DeadlineExceeded):
		return fmt.Sprintf("no response within %s", timeout)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Sprintf("no response within %s", timeout)
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Error()
	}
	return err.Error()
}

// Output is what the model reads from a 2xx response body: its top-level
// string "output" when the body is a JSON object with one, else the body
// text, cut at 512 KiB.
func Output(body []byte) string {
	var obj struct {
		Output *string `json:"output"`
	}
	if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 && trimmed[0] == '{' && len(body) <= MaxOutput {
		if err := json.Unmarshal(trimmed, &obj); err == nil && obj.Output != nil {
			return *obj.Output
		}
	}
	return cut(body, MaxOutput)
}

// cut returns at most n bytes of b as a string, not splitting a UTF-8
// sequence, with invalid bytes replaced.
func cut(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
		for i := 0; i < utf8.UTFMax && len(b) > 0; i++ {
			r, size := utf8.DecodeLastRune(b)
			if r != utf8.RuneError || size != 1 {
				break
			}
			b = b[:len(b)-1]
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
