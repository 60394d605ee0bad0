package apitest

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// The Responses WebSocket mode (GET /v1/responses upgraded): response.create
// messages in, the stream's events out as messages, store: false responses
// continued on their own connection only. Ported from the Open Responses
// suite's WebSocket scenarios.

type socket struct {
	t    *testing.T
	conn *websocket.Conn
	ctx  context.Context
}

func dialResponses(t *testing.T, s *server) *socket {
	t.Helper()
	ctx := streamContext(t)
	url := "ws" + strings.TrimPrefix(s.URL, "http") + "/v1/responses"
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + s.Key}}})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	return &socket{t: t, conn: conn, ctx: ctx}
}

// turn sends one response.create and reads its messages to the terminal
// event (or the error), validating each event.
func (so *socket) turn(body string) (types []string, last map[string]any) {
	so.t.Helper()
	if err := so.conn.Write(so.ctx, websocket.MessageText, []byte(body)); err != nil {
		so.t.Fatal(err)
	}
	seq := -1.0
	for {
		_, data, err := so.conn.Read(so.ctx)
		if err != nil {
			so.t.Fatalf("read: %v (after %v)", err, types)
		}
		var ev map[string]any
		if err := json.Unmarshal(data, &ev); err != nil {
			so.t.Fatal(err)
		}
		typ, _ := ev["type"].(string)
		types = append(types, typ)
		if typ == "error" {
			return types, ev
		}
		if err := validateJSON("ResponseStreamEvent", data); err != nil {
			so.t.Errorf("event %s: %v", typ, err)
		}
		if n, _ := ev["sequence_number"].(float64); n <= seq {
			so.t.Errorf("sequence_number %v after %v", n, seq)
		} else {
			seq = n
		}
		switch typ {
		case "response.completed", "response.failed", "response.incomplete":
			return types, ev["response"].(map[string]any)
		}
	}
}

func errorCode(ev map[string]any) string {
	e, _ := ev["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func TestResponseWebSocket(t *testing.T) {
	t.Parallel()
	s, up := startRunServer(t)
	so := dialResponses(t, s)
	types, r1 := so.turn(`{"type":"response.create","model":"fake-model","store":false,"input":"Remember the code word: cobalt."}`)
	if types[0] != "response.created" || r1["status"] != "completed" {
		t.Fatalf("first turn: %v %v", types, r1)
	}
	// A store: false response continues on its own connection.
	_, r2 := so.turn(`{"type":"response.create","model":"fake-model","store":false,"previous_response_id":"` + r1["id"].(string) + `","input":"What was the word?"}`)
	if r2["status"] != "completed" || r2["previous_response_id"] != r1["id"] {
		t.Fatalf("continuation: %v", r2)
	}
	got := chatTurns(requestsWith(up, "What was the word?")[0])
	want := []string{"user: Remember the code word: cobalt.", "assistant: You said: Remember the code word: cobalt.", "user: What was the word?"}
	if !slices.Equal(got, want) {
		t.Errorf("the model read %q, want %q", got, want)
	}
	// A failed continuation forgets the response it named.
	_, failed := so.turn(`{"type":"response.create","model":"fake-model","store":false,"previous_response_id":"` + r2["id"].(string) +
		`","input":[{"type":"function_call_output","call_id":"call_missing","output":"x"}]}`)
	if failed["type"] != "error" || failed["status"] != 400.0 {
		t.Errorf("failed continuation: %v", failed)
	}
	_, stale := so.turn(`{"type":"response.create","model":"fake-model","store":false,"previous_response_id":"` + r2["id"].(string) + `","input":"again"}`)
	if errorCode(stale) != "previous_response_not_found" {
		t.Errorf("after the failed continuation: %v", stale)
	}
	// Another connection cannot continue it either.
	other := dialResponses(t, s)
	if _, ev := other.turn(`{"type":"response.create","model":"fake-model","store":false,"previous_response_id":"` + r1["id"].(string) + `","input":"hi"}`); errorCode(ev) != "previous_response_not_found" {
		t.Errorf("on another connection: %v", ev)
	}
	// Not a response.create.
	if _, ev := other.turn(`{"type":"response.cancel"}`); errorCode(ev) != "invalid_value" {
		t.Errorf("unknown message type: %v", ev)
	}
	// A plain GET is no route.
	if res := s.do(t, "GET", "/v1/responses", nil, nil); res.Status != http.StatusNotFound {
		t.Errorf("GET /v1/responses: %d %s", res.Status, res.Body)
	}
	// Without a key the handshake is refused.
	url := "ws" + strings.TrimPrefix(s.URL, "http") + "/v1/responses"
	if _, res, err := websocket.Dial(streamContext(t), url, nil); err == nil || res == nil || res.StatusCode != http.StatusUnauthorized {
		t.Errorf("dial without a key: %v %v", res, err)
	}
}
