package apitest

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	collector "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/assistantd/assistantd/tests/upstream"
)

// otlpCollector is an OTLP/HTTP trace receiver: it keeps every span sent
// to /v1/traces with its resource's service.name.
type otlpCollector struct {
	mu      sync.Mutex
	spans   []*tracepb.Span
	service map[string]bool
}

func (c *otlpCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req collector.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || proto.Unmarshal(body, &req) != nil {
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				c.service[kv.GetValue().GetStringValue()] = true
			}
		}
		for _, ss := range rs.ScopeSpans {
			c.spans = append(c.spans, ss.Spans...)
		}
	}
	c.mu.Unlock()
	out, _ := proto.Marshal(&collector.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

// find returns the spans named name in trace traceID.
func (c *otlpCollector) find(traceID []byte, name string) []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range c.spans {
		if s.Name == name && string(s.TraceId) == string(traceID) {
			out = append(out, s)
		}
	}
	return out
}

func spanAttr(s *tracepb.Span, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

// With OTEL_EXPORTER_OTLP_ENDPOINT set, the server exports its traces
// over OTLP/HTTP: a streamed run created with the client's traceparent
// yields the server span under the client's span, and the run's
// invoke_agent and chat spans in the same trace.
func TestTracesExportedByOTLP(t *testing.T) {
	t.Parallel()
	col := &otlpCollector{service: map[string]bool{}}
	colSrv := httptest.NewServer(col)
	t.Cleanup(colSrv.Close)
	up := httptest.NewServer(upstream.New())
	t.Cleanup(up.Close)
	s := &server{t: t, Key: "sk-test-" + randomHex(16), Data: t.TempDir(), args: []string{"--upstream-url", up.URL + "/v1"},
		env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + colSrv.URL, "OTEL_BSP_SCHEDULE_DELAY=50", "OTEL_SERVICE_NAME=assistantd-test"}}
	s.start(t)
	t.Cleanup(func() { s.stop(t) })

	asst := newAssistant(t, s)
	thread := threadWith(t, s, "hello")
	traceID, clientSpan := randomBytes(t, 16), randomBytes(t, 8)
	tp := "00-" + hex.EncodeToString(traceID) + "-" + hex.EncodeToString(clientSpan) + "-01"
	ctx, cancel := context.WithTimeout(context.Background(), streamDeadline)
	defer cancel()
	stream := s.Client.Beta.Threads.Runs.NewStreaming(ctx, thread, openai.BetaThreadRunNewParams{AssistantID: asst},
		option.WithHeader("traceparent", tp))
	for stream.Next() {
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}

	var server, agentSpans, chats []*tracepb.Span
	for deadline := time.Now().Add(runDeadline); ; time.Sleep(20 * time.Millisecond) {
		server = col.find(traceID, "POST /v1/threads/:thread_id/runs")
		agentSpans = col.find(traceID, "invoke_agent")
		chats = col.find(traceID, "chat fake-model")
		if len(server) == 1 && len(agentSpans) == 1 && len(chats) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("spans in the client's trace: %d server, %d invoke_agent, %d chat; want 1 each", len(server), len(agentSpans), len(chats))
		}
	}
	if string(server[0].ParentSpanId) != string(clientSpan) || server[0].Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("server span: parent %x kind %v, want the client's span %x", server[0].ParentSpanId, server[0].Kind, clientSpan)
	}
	if got := spanAttr(server[0], "http.route"); got != "/v1/threads/:thread_id/runs" {
		t.Errorf("http.route %q", got)
	}
	if string(agentSpans[0].ParentSpanId) != string(server[0].SpanId) {
		t.Error("invoke_agent is not under the request that created the run")
	}
	if spanAttr(agentSpans[0], "gen_ai.agent.id") != asst || spanAttr(agentSpans[0], "gen_ai.conversation.id") != thread {
		t.Errorf("invoke_agent attributes %v", agentSpans[0].Attributes)
	}
	if string(chats[0].ParentSpanId) != string(agentSpans[0].SpanId) || chats[0].Kind != tracepb.Span_SPAN_KIND_CLIENT {
		t.Error("the chat span is not a client span under invoke_agent")
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	if !col.service["assistantd-test"] {
		t.Errorf("service names %v, want OTEL_SERVICE_NAME's", col.service)
	}
}

func randomBytes(t testing.TB, n int) []byte {
	b, err := hex.DecodeString(randomHex(n))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
