// Package upstream is a scripted OpenAI-compatible Chat Completions server
// for tests and benchmarks. It speaks the real wire format (streaming SSE
// chunks and plain JSON), so assistantd's real openai-go client path runs
// against it.
//
// What it answers is scripted by directives in the last user message:
//
//	[[call NAME JSON]]       call function NAME with arguments JSON (repeat for parallel calls)
//	[[quirk ollama]]         send each tool call whole in one chunk, every one with index 0
//	[[quirk noindex]]        omit "index" from tool call fragments
//	[[status CODE N]]        answer the first N requests for this message with HTTP CODE
//	[[slow DURATION]]        wait DURATION before each chunk
//	[[chunks N]]             answer with N words
//	[[length]]               stop with finish_reason "length"
//	[[recall]]               answer with the text of the first user message
//	[[nousage]]              send no usage
//	[[repeat]]               after tool results, call the same functions again (endless tool rounds)
//	[[reasoning N]]          reason first: N words ("r0 r1 …") as reasoning_content, as vLLM and
//	                         DeepSeek send it, counted as completion_tokens_details.reasoning_tokens
//
// POST /v1/embeddings answers with a hashed bag of words (see Embed).
//
// Without directives it answers "You said: <message>", or what Answer
// scripted for that message. When the last message is a tool result it
// answers "Tool results: <outputs>".
package upstream

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Server is the fake upstream. It records every request body.
type Server struct {
	// ChunkDelay is added before every streamed chunk (on top of [[slow]]).
	ChunkDelay time.Duration

	mu       sync.Mutex
	requests []Request
	failures map[string]int
	embedded int               // texts embedded (POST /v1/embeddings)
	answers  map[string]string // Answer's scripted replies by user message
	scripts  map[string]string // Script's directives by user message
}

// Request is one recorded chat completion request.
type Request struct {
	Model               string           `json:"model"`
	Messages            []Message        `json:"messages"`
	Tools               []map[string]any `json:"tools"`
	ToolChoice          any              `json:"tool_choice"`
	ParallelToolCalls   *bool            `json:"parallel_tool_calls"`
	Temperature         *float64         `json:"temperature"`
	TopP                *float64         `json:"top_p"`
	MaxCompletionTokens *int64           `json:"max_completion_tokens"`
	ResponseFormat      map[string]any   `json:"response_format"`
	Stream              bool             `json:"stream"`
}

// Message is a chat message of a recorded request.
type Message struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	ToolCalls  []ToolCall      `json:"tool_calls"`
	ToolCallID string          `json:"tool_call_id"`
}

// ToolCall is an assistant tool call of a recorded request.
type ToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// Text returns the message content as plain text (string content, or the
// text parts joined).
func (m Message) Text() string {
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	_ = json.Unmarshal(m.Content, &parts)
	var out []string
	for _, p := range parts {
		if p.Type == "text" {
			out = append(out, p.Text)
		}
	}
	return strings.Join(out, "\n")
}

// New returns a fake upstream.
func New() *Server {
	return &Server{failures: map[string]int{}, answers: map[string]string{}, scripts: map[string]string{}}
}

// Script makes a last user message equal to message act as if it carried
// directives too: for clients whose messages a test cannot change (a
// third-party suite asking about the weather, say).
func (s *Server) Script(message, directives string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scripts[message] = directives
}

// Answer scripts the reply to a last user message equal to message, for
// replies a directive in the message cannot script without changing it
// (e.g. a search query's rewrite, where the message itself is searched).
func (s *Server) Answer(message, reply string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers[message] = reply
}

// Requests returns the requests received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// directive matches [[name args]]; args may hold JSON with brackets, the
// directive ends at "]]" followed by white space or the end of the text.
var directive = regexp.MustCompile(`\[\[(\w+)\s*(.*?)\]\](?:\s|$)`)

type script struct {
	calls   []ToolCall
	quirk   string
	status  int
	times   int
	slow    time.Duration
	words   int
	length  bool
	recall  bool
	noUsage bool
	repeat  bool
	reason  int
}

func parse(text string) script {
	var sc script
	for _, m := range directive.FindAllStringSubmatch(text, -1) {
		arg := strings.TrimSpace(m[2])
		switch m[1] {
		case "call":
			name, args, _ := strings.Cut(arg, " ")
			var tc ToolCall
			tc.Type, tc.Function.Name, tc.Function.Arguments = "function", name, strings.TrimSpace(args)
			if tc.Function.Arguments == "" {
				tc.Function.Arguments = "{}"
			}
			sc.calls = append(sc.calls, tc)
		case "quirk":
			sc.quirk = arg
		case "status":
			f := strings.Fields(arg)
			if len(f) > 0 {
				sc.status, _ = strconv.Atoi(f[0])
				sc.times = 1 << 30
			}
			if len(f) > 1 {
				sc.times, _ = strconv.Atoi(f[1])
			}
		case "slow":
			sc.slow, _ = time.ParseDuration(arg)
		case "chunks":
			sc.words, _ = strconv.Atoi(arg)
		case "length":
			sc.length = true
		case "recall":
			sc.recall = true
		case "nousage":
			sc.noUsage = true
		case "repeat":
			sc.repeat = true
		case "reasoning":
			sc.reason, _ = strconv.Atoi(arg)
		}
	}
	return sc
}

// ServeHTTP answers POST /v1/chat/completions and GET /v1/models.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/models"):
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []map[string]any{
			{"id": "fake-model", "object": "model", "created": 1700000000, "owned_by": "fake"},
			{"id": "fake-model-2", "object": "model", "created": 1700000000, "owned_by": "fake"},
		}})
		return
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/embeddings"):
		s.embeddings(w, r)
		return
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/chat/completions"):
	default:
		writeJSON(w, http.StatusNotFound, errorBody("not found: "+r.URL.Path))
		return
	}
	var req Request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody("bad json: "+err.Error()))
		return
	}
	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()

	var lastUser, firstUser string
	for _, m := range req.Messages {
		if m.Role == "user" {
			if firstUser == "" {
				firstUser = m.Text()
			}
			lastUser = m.Text()
		}
	}
	last := req.Messages[len(req.Messages)-1]
	s.mu.Lock()
	answer, scripted := s.answers[lastUser]
	sc := parse(lastUser + " " + s.scripts[lastUser])
	s.mu.Unlock()
	if sc.status != 0 {
		s.mu.Lock()
		n := s.failures[lastUser]
		if n < sc.times {
			s.failures[lastUser] = n + 1
		}
		s.mu.Unlock()
		if n < sc.times {
			writeJSON(w, sc.status, errorBody(fmt.Sprintf("scripted failure %d", sc.status)))
			return
		}
	}

	var text string
	var calls []ToolCall
	switch {
	case last.Role == "tool" && sc.repeat && len(sc.calls) > 0:
		calls = sc.calls
	case last.Role == "tool":
		var outs []string
		for i := len(req.Messages) - 1; i >= 0 && req.Messages[i].Role == "tool"; i-- {
			outs = append([]string{req.Messages[i].Text()}, outs...)
		}
		text = "Tool results: " + strings.Join(outs, "; ")
	case len(sc.calls) > 0:
		calls = sc.calls
	case scripted:
		text = answer
	case sc.recall:
		text = "Earlier you said: " + firstUser
	case sc.words > 0:
		words := make([]string, sc.words)
		for i := range words {
			words[i] = fmt.Sprintf("w%d", i)
		}
		text = strings.Join(words, " ")
	default:
		text = "You said: " + strings.TrimSpace(directive.ReplaceAllString(lastUser, ""))
	}
	finish := "stop"
	if len(calls) > 0 {
		finish = "tool_calls"
	}
	if sc.length {
		finish = "length"
	}
	promptTokens := 0
	for _, m := range req.Messages {
		promptTokens += len(strings.Fields(m.Text())) + 4
	}
	reasoning := make([]string, sc.reason)
	for i := range reasoning {
		reasoning[i] = fmt.Sprintf("r%d", i)
	}
	completionTokens := len(strings.Fields(text)) + len(calls)*8 + sc.reason
	usage := map[string]any{"prompt_tokens": promptTokens, "completion_tokens": completionTokens, "total_tokens": promptTokens + completionTokens}
	if sc.reason > 0 {
		usage["completion_tokens_details"] = map[string]any{"reasoning_tokens": sc.reason}
	}

	if !req.Stream {
		msg := map[string]any{"role": "assistant", "content": text}
		if sc.reason > 0 {
			msg["reasoning_content"] = strings.Join(reasoning, " ")
		}
		if len(calls) > 0 {
			var tcs []map[string]any
			for i, c := range calls {
				tcs = append(tcs, map[string]any{"id": fmt.Sprintf("call_up%d", i), "type": "function",
					"function": map[string]string{"name": c.Function.Name, "arguments": c.Function.Arguments}})
			}
			msg["tool_calls"] = tcs
			msg["content"] = nil
		}
		body := map[string]any{"id": "chatcmpl-fake", "object": "chat.completion", "created": time.Now().Unix(), "model": req.Model,
			"choices": []map[string]any{{"index": 0, "message": msg, "finish_reason": finish}}}
		if !sc.noUsage {
			body["usage"] = usage
		}
		writeJSON(w, http.StatusOK, body)
		return
	}

	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	send := func(delta map[string]any, finishReason any) bool {
		if d := s.ChunkDelay + sc.slow; d > 0 {
			select {
			case <-time.After(d):
			case <-r.Context().Done():
				return false
			}
		}
		chunk := map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": time.Now().Unix(),
			"model": req.Model, "choices": []map[string]any{{"index": 0, "delta": delta, "finish_reason": finishReason}}}
		b, _ := json.Marshal(chunk)
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	if !send(map[string]any{"role": "assistant", "content": ""}, nil) {
		return
	}
	for i, r := range reasoning {
		if i < len(reasoning)-1 {
			r += " "
		}
		if !send(map[string]any{"reasoning_content": r}, nil) {
			return
		}
	}
	if text != "" {
		fields := strings.SplitAfter(text, " ")
		for _, f := range fields {
			if !send(map[string]any{"content": f}, nil) {
				return
			}
		}
	}
	for i, c := range calls {
		args := c.Function.Arguments
		switch sc.quirk {
		case "ollama":
			// Whole call in one chunk, index 0 for every call.
			if !send(map[string]any{"tool_calls": []map[string]any{{"index": 0, "id": fmt.Sprintf("call_o%d", i), "type": "function",
				"function": map[string]string{"name": c.Function.Name, "arguments": args}}}}, nil) {
				return
			}
		default:
			first := map[string]any{"id": fmt.Sprintf("call_up%d", i), "type": "function",
				"function": map[string]string{"name": c.Function.Name, "arguments": ""}}
			if sc.quirk != "noindex" {
				first["index"] = i
			}
			if !send(map[string]any{"tool_calls": []map[string]any{first}}, nil) {
				return
			}
			// Arguments split across several chunks.
			for len(args) > 0 {
				n := min(len(args), 5)
				for n < len(args) && !utf8.RuneStart(args[n]) {
					n++ // whole characters only, as a real upstream's JSON strings
				}
				frag := map[string]any{"function": map[string]string{"arguments": args[:n]}}
				if sc.quirk != "noindex" {
					frag["index"] = i
				}
				if !send(map[string]any{"tool_calls": []map[string]any{frag}}, nil) {
					return
				}
				args = args[n:]
			}
		}
	}
	if !send(map[string]any{}, finish) {
		return
	}
	if !sc.noUsage {
		b, _ := json.Marshal(map[string]any{"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": time.Now().Unix(),
			"model": req.Model, "choices": []any{}, "usage": usage})
		fmt.Fprintf(w, "data: %s\n\n", b)
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	if flusher != nil {
		flusher.Flush()
	}
}

func errorBody(msg string) map[string]any {
	return map[string]any{"error": map[string]any{"message": msg, "type": "server_error", "param": nil, "code": nil}}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
