package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// receiver is a test endpoint that verifies every delivery's signature and
// answers with its handler.
type receiver struct {
	t      *testing.T
	key    []byte
	srv    *httptest.Server
	mu     sync.Mutex
	ids    []string // webhook-id of each request, in order
	bodies []Payload
	hits   atomic.Int32
}

func newReceiver(t *testing.T, secret string, h http.HandlerFunc) *receiver {
	t.Helper()
	key, err := Key(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, key: key}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.hits.Add(1)
		body, _ := io.ReadAll(req.Body)
		id, tsHeader := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp")
		ts, err := strconv.ParseInt(tsHeader, 10, 64)
		if err != nil || !Verify(r.key, id, ts, body, req.Header.Get("webhook-signature")) {
			t.Errorf("delivery with a bad signature: id %q timestamp %q", id, tsHeader)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if d := time.Since(time.Unix(ts, 0)); d > 5*time.Minute || d < -5*time.Minute {
			t.Errorf("webhook-timestamp %d is %s off", ts, d)
		}
		if ct := req.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		var p Payload
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("payload is not JSON: %v", err)
		}
		r.mu.Lock()
		r.ids = append(r.ids, id)
		r.bodies = append(r.bodies, p)
		r.mu.Unlock()
		h(w, req)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) seenIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...)
}

func loopbackClient() *Client {
	return NewClient(NewGuard(mustPrefixes("127.0.0.0/8"), nil), WithBackoff(5*time.Millisecond))
}

func testPayload(t *testing.T) []byte {
	b, err := json.Marshal(Payload{Type: "function_call", ToolCallID: "call_1",
		Function: PayloadFunction{Name: "get_weather", Arguments: `{"city":"Paris"}`},
		RunID:    "run_1", ThreadID: "thread_1", AssistantID: "asst_1", CreatedAt: time.Now().Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDeliverOutput(t *testing.T) {
	secret := NewSecret()
	big := strings.Repeat("é", MaxOutput) // 2 bytes each: twice the limit
	cases := []struct {
		name, body, want string
	}{
		{"JSON with a string output", `{"output":"22°C and sunny","extra":1}`, "22°C and sunny"},
		{"JSON without output", `{"temperature":22}`, `{"temperature":22}`},
		{"JSON whose output is not a string", `{"output":{"t":22}}`, `{"output":{"t":22}}`},
		{"plain text", "22 degrees", "22 degrees"},
		{"empty", "", ""},
		{"cut at 512 KiB", big, big[:MaxOutput]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newReceiver(t, secret, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, c.body) })
			var attempts []Attempt
			out, err := loopbackClient().Deliver(context.Background(),
				Target{URL: r.srv.URL, Secret: secret, Timeout: 5 * time.Second, MaxRetries: 2},
				MessageID("call_1"), testPayload(t), func(a Attempt) { attempts = append(attempts, a) })
			if err != nil {
				t.Fatal(err)
			}
			if out != c.want {
				t.Fatalf("output = %.80q (%d bytes), want %.80q (%d bytes)", out, len(out), c.want, len(c.want))
			}
			if len(attempts) != 1 || attempts[0].Status != 200 || attempts[0].Err != "" || attempts[0].N != 1 {
				t.Fatalf("attempts = %+v, want one 200", attempts)
			}
			if len(attempts[0].Response) > excerptBytes {
				t.Fatalf("excerpt is %d bytes", len(attempts[0].Response))
			}
			if ids := r.seenIDs(); len(ids) != 1 || ids[0] != "msg_call_1" {
				t.Fatalf("webhook-ids = %v", ids)
			}
		})
	}
}

func TestDeliverRetries(t *testing.T) {
	secret := NewSecret()
	t.Run("non-2xx then success: one webhook-id", func(t *testing.T) {
		var n atomic.Int32
		r := newReceiver(t, secret, func(w http.ResponseWriter, _ *http.Request) {
			switch n.Add(1) {
			case 1:
				http.Error(w, "try later", http.StatusServiceUnavailable)
			case 2:
				http.Error(w, "boom", http.StatusInternalServerError)
			default:
				io.WriteString(w, `{"output":"ok"}`)
			}
		})
		var attempts []Attempt
		out, err := loopbackClient().Deliver(context.Background(),
			Target{URL: r.srv.URL, Secret: secret, Timeout: time.Second, MaxRetries: 2},
			"msg_x", testPayload(t), func(a Attempt) { attempts = append(attempts, a) })
		if err != nil || out != "ok" {
			t.Fatalf("Deliver = %q, %v", out, err)
		}
		var statuses []int
		for i, a := range attempts {
			statuses = append(statuses, a.Status)
			if a.N != i+1 {
				t.Errorf("attempt %d numbered %d", i+1, a.N)
			}
		}
		if got := strconv.Itoa(len(statuses)); got != "3" || statuses[0] != 503 || statuses[1] != 500 || statuses[2] != 200 {
			t.Fatalf("statuses = %v, want [503 500 200]", statuses)
		}
		if !strings.Contains(attempts[1].Err, "HTTP 500") || !strings.Contains(attempts[1].Response, "boom") {
			t.Fatalf("attempt 2 = %+v", attempts[1])
		}
		if ids := r.seenIDs(); len(ids) != 3 || ids[0] != "msg_x" || ids[1] != "msg_x" || ids[2] != "msg_x" {
			t.Fatalf("webhook-ids = %v, want msg_x three times", ids)
		}
	})
	t.Run("always failing: max_retries+1 attempts, then Failed", func(t *testing.T) {
		r := newReceiver(t, secret, func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "down for maintenance", http.StatusBadGateway)
		})
		_, err := loopbackClient().Deliver(context.Background(),
			Target{URL: r.srv.URL, Secret: secret, Timeout: time.Second, MaxRetries: 3}, "msg_y", testPayload(t), nil)
		var f *Failed
		if !errors.As(err, &f) || f.Attempts != 4 || !strings.Contains(f.Error(), "HTTP 502") {
			t.Fatalf("Deliver error = %v, want Failed after 4 attempts with HTTP 502", err)
		}
		if r.hits.Load() != 4 {
			t.Fatalf("receiver saw %d requests, want 4", r.hits.Load())
		}
	})
	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		r := newReceiver(t, secret, func(w http.ResponseWriter, req *http.Request) {
			select {
			case <-req.Context().Done():
			case <-release:
			}
		})
		var attempts []Attempt
		_, err := loopbackClient().Deliver(context.Background(),
			Target{URL: r.srv.URL, Secret: secret, Timeout: 100 * time.Millisecond, MaxRetries: 1},
			"msg_z", testPayload(t), func(a Attempt) { attempts = append(attempts, a) })
		var f *Failed
		if !errors.As(err, &f) || f.Attempts != 2 || !strings.Contains(f.Last, "no response within 100ms") {
			t.Fatalf("Deliver error = %v, want Failed after 2 attempts, a timeout", err)
		}
		for _, a := range attempts {
			if a.Status != 0 || a.Latency < 100*time.Millisecond {
				t.Fatalf("attempt %+v: want no status and at least the timeout", a)
			}
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		var attempts []Attempt
		_, err = loopbackClient().Deliver(context.Background(),
			Target{URL: "http://" + addr + "/", Secret: secret, Timeout: time.Second, MaxRetries: 2},
			"msg_c", testPayload(t), func(a Attempt) { attempts = append(attempts, a) })
		var f *Failed
		if !errors.As(err, &f) || f.Attempts != 3 || len(attempts) != 3 || !strings.Contains(f.Last, "refused") {
			t.Fatalf("Deliver error = %v (attempts %+v), want Failed after 3, connection refused", err, attempts)
		}
	})
	t.Run("cancelled during a slow delivery", func(t *testing.T) {
		arrived := make(chan struct{}, 1)
		r := newReceiver(t, secret, func(w http.ResponseWriter, req *http.Request) {
			arrived <- struct{}{}
			<-req.Context().Done()
		})
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-arrived; cancel() }()
		_, err := loopbackClient().Deliver(ctx,
			Target{URL: r.srv.URL, Secret: secret, Timeout: time.Minute, MaxRetries: 5}, "msg_k", testPayload(t), nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Deliver error = %v, want context.Canceled", err)
		}
		if r.hits.Load() != 1 {
			t.Fatalf("receiver saw %d requests after the cancel, want 1", r.hits.Load())
		}
	})
	t.Run("a bad secret is not sent", func(t *testing.T) {
		r := newReceiver(t, secret, func(w http.ResponseWriter, _ *http.Request) {})
		_, err := loopbackClient().Deliver(context.Background(),
			Target{URL: r.srv.URL, Secret: "whsec_short", MaxRetries: 2}, "msg_s", testPayload(t), nil)
		var f *Failed
		if !errors.As(err, &f) || f.Attempts != 0 || r.hits.Load() != 0 {
			t.Fatalf("Deliver error = %v, hits %d; want Failed before any attempt", err, r.hits.Load())
		}
	})
}

// fakeResolver answers host names from a table, each lookup taking the
// next answer (the last one repeats), to play a rebinding DNS server.
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][]string
	lookups int
}

func (f *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups++
	list, ok := f.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	a := netip.MustParseAddr(list[0])
	if len(list) > 1 {
		f.answers[host] = list[1:]
	}
	return []netip.Addr{a}, nil
}

func TestGuardAtConnect(t *testing.T) {
	secret := NewSecret()
	r := newReceiver(t, secret, func(w http.ResponseWriter, _ *http.Request) {
		// No keep-alive: every delivery opens (and checks) a new connection.
		w.Header().Set("Connection", "close")
		io.WriteString(w, "ok")
	})
	port := r.srv.Listener.Addr().(*net.TCPAddr).Port
	url := "http://hooks.example.test:" + strconv.Itoa(port) + "/"
	target := Target{URL: url, Secret: secret, Timeout: time.Second, MaxRetries: 3}

	t.Run("a name resolving to a refused address", func(t *testing.T) {
		res := &fakeResolver{answers: map[string][]string{"hooks.example.test": {"127.0.0.1"}}}
		c := NewClient(NewGuard(nil, res), WithBackoff(time.Millisecond))
		if _, err := c.Guard().CheckURL(url); err != nil {
			t.Fatalf("a host name is checked at connect time, not when configured: %v", err)
		}
		before := r.hits.Load()
		_, err := c.Deliver(context.Background(), target, "msg_r", testPayload(t), nil)
		var f *Failed
		if !errors.As(err, &f) || !f.Refused || f.Attempts != 1 || !strings.Contains(f.Last, "hooks.example.test (127.0.0.1)") {
			t.Fatalf("Deliver error = %#v, want refused on the first attempt (not retried), naming the host", err)
		}
		if r.hits.Load() != before {
			t.Fatal("the receiver was reached")
		}
	})
	t.Run("rebinding: checked on every connection", func(t *testing.T) {
		res := &fakeResolver{answers: map[string][]string{"hooks.example.test": {"127.0.0.1", "127.0.0.2"}}}
		c := NewClient(NewGuard(mustPrefixes("127.0.0.1/32"), res), WithBackoff(time.Millisecond))
		if out, err := c.Deliver(context.Background(), target, "msg_1", testPayload(t), nil); err != nil || out != "ok" {
			t.Fatalf("first delivery (allowed address) = %q, %v", out, err)
		}
		_, err := c.Deliver(context.Background(), target, "msg_2", testPayload(t), nil)
		var f *Failed
		if !errors.As(err, &f) || !f.Refused || !strings.Contains(f.Last, "127.0.0.2") {
			t.Fatalf("second delivery (the name now resolves to 127.0.0.2) = %v, want refused", err)
		}
	})
	t.Run("redirects are not followed", func(t *testing.T) {
		var reached atomic.Int32
		inner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { reached.Add(1) }))
		defer inner.Close()
		for _, loc := range []string{inner.URL, "http://169.254.169.254/latest/meta-data/", "http://[::1]/"} {
			red := newReceiver(t, secret, func(w http.ResponseWriter, req *http.Request) {
				http.Redirect(w, req, loc, http.StatusTemporaryRedirect)
			})
			var attempts []Attempt
			_, err := loopbackClient().Deliver(context.Background(),
				Target{URL: red.srv.URL, Secret: secret, Timeout: time.Second, MaxRetries: 1},
				"msg_redirect", testPayload(t), func(a Attempt) { attempts = append(attempts, a) })
			var f *Failed
			if !errors.As(err, &f) || len(attempts) != 2 || attempts[0].Status != http.StatusTemporaryRedirect ||
				!strings.Contains(f.Last, "redirects are not followed") {
				t.Fatalf("redirect to %s: Deliver = %v, attempts %+v", loc, err, attempts)
			}
		}
		if reached.Load() != 0 {
			t.Fatal("a redirect was followed")
		}
	})
	t.Run("a literal refused address", func(t *testing.T) {
		c := NewClient(NewGuard(nil, nil))
		_, err := c.Deliver(context.Background(), Target{URL: r.srv.URL, Secret: secret, MaxRetries: 2}, "msg_l", testPayload(t), nil)
		var f *Failed
		if !errors.As(err, &f) || !f.Refused {
			t.Fatalf("Deliver = %v, want refused", err)
		}
	})
}

// BenchmarkRoundTrip measures what a webhook adds to a tool call: one
// signed delivery to a receiver on the same machine and its response read,
// reporting p50 and p99 latencies.
func BenchmarkRoundTrip(b *testing.B) {
	secret := NewSecret()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		io.Copy(io.Discard, req.Body)
		io.WriteString(w, `{"output":"{\"temperature\":22,\"unit\":\"celsius\"}"}`)
	}))
	defer srv.Close()
	c := NewClient(NewGuard(mustPrefixes("127.0.0.0/8"), nil))
	body, _ := json.Marshal(Payload{Type: "function_call", ToolCallID: "call_bench",
		Function: PayloadFunction{Name: "get_weather", Arguments: `{"city":"Paris"}`}, RunID: "run_b", ThreadID: "thread_b",
		AssistantID: "asst_b", CreatedAt: time.Now().Unix()})
	target := Target{URL: srv.URL, Secret: secret, Timeout: 10 * time.Second}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := c.Deliver(context.Background(), target, "msg_bench", body, nil); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds()), "p99-µs")
}
