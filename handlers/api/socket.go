package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
)

// WebSocket mode: GET /v1/responses upgraded to a WebSocket. The client
// sends {"type": "response.create", …create fields} messages one at a
// time; each response's events come back as one text message each, the
// same events as the Server-Sent Events stream, ending with the terminal
// one. A request refused is an error message
// {"type": "error", "status", "error": {type, code, message, param}}.
//
// A connection remembers the store: false responses it made (their
// history), so it alone can continue them with previous_response_id; a
// continuation that fails forgets the response it named.

// maxSocketMessage bounds one client message, as maxBody bounds a body.
const maxSocketMessage = maxBody

// ResponsesSocket handles GET /v1/responses: the WebSocket mode. A request
// that is no upgrade is the same 404 as any unknown route.
func (h *Responses) ResponsesSocket(c *echo.Context) error {
	r := c.Request()
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return echo.ErrNotFound
	}
	w := http.ResponseWriter(c.Response())
	if rw, err := echo.UnwrapResponse(c.Response()); err == nil {
		w = rw.ResponseWriter
	}
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return nil // Accept has answered the handshake
	}
	defer conn.CloseNow()
	conn.SetReadLimit(maxSocketMessage)
	ctx, cancel := h.streams.Context(context.WithoutCancel(r.Context()))
	defer cancel()
	cached := map[string][]json.RawMessage{}
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return nil // closed
		}
		if err := h.socketTurn(ctx, conn, data, cached); err != nil {
			return nil
		}
	}
}

// socketTurn serves one client message; an error ends the connection.
func (h *Responses) socketTurn(ctx context.Context, conn *websocket.Conn, data []byte, cached map[string][]json.RawMessage) error {
	refuse := func(err error) error {
		ae := respond.AsError(err)
		if ae == nil {
			ae = respond.Internal(err)
			h.log.Error("websocket response", "error", err)
		}
		body, _ := json.Marshal(ae) // {"error": {message, type, param, code}}
		var env map[string]any
		_ = json.Unmarshal(body, &env)
		env["type"], env["status"] = "error", ae.Status
		return conn.Write(ctx, websocket.MessageText, mustJSON(env))
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return refuse(respond.Invalid("", "invalid_json", "The message is not a JSON object."))
	}
	var typ string
	_ = json.Unmarshal(fields["type"], &typ)
	if typ != "response.create" {
		return refuse(respond.Invalid("type", "invalid_value", "Invalid value: '%s'. Supported values are: 'response.create'.", typ))
	}
	delete(fields, "type")
	delete(fields, "stream") // every response here streams
	for k := range fields {
		if !slices.Contains(createFields, k) {
			return refuse(respond.Invalid(k, "unknown_parameter", "Unknown parameter: '%s'.", k))
		}
	}
	for k, v := range fields {
		if string(v) == "null" {
			delete(fields, k)
		}
	}
	req, err := h.parseFields(ctx, fields, false, cached)
	if err != nil {
		if prev := req.rec.PreviousResponseID; prev != nil {
			delete(cached, *prev) // a failed continuation forgets what it named
		}
		return refuse(err)
	}
	input := append(append([]json.RawMessage{}, req.prefix...), req.input...)
	run, err := h.createResponse(ctx, db.Thread{Metadata: db.Metadata{"response_id": req.rec.ID}}, req.run, req.rec, input)
	switch {
	case errors.Is(err, db.ErrConversationLocked):
		return refuse(respond.Invalid("conversation", "conversation_locked",
			"Another process is currently operating on this conversation. Please retry in a few seconds."))
	case errors.Is(err, db.ErrNotFound):
		return refuse(respond.NotFound("conversation", *req.rec.ConversationID))
	case err != nil: // the project's settings or rate limit refused it, or a failure
		return refuse(respond.RunErr(err, ""))
	}
	rec := req.rec
	rec.RunID, rec.ThreadID, rec.CreatedAt = run.ID, run.ThreadID, run.CreatedAt
	defer h.forget(ctx, rec)
	status := "" // the terminal event's response status
	var werr error
	h.follow(ctx, rec, run.Model, req.include, -1, sink{
		event: func(f frame) error {
			if r, ok := f.data["response"].(responseObject); ok && (f.typ == "response.completed" || f.typ == "response.failed" || f.typ == "response.incomplete") {
				status = r.Status
			}
			werr = conn.Write(ctx, websocket.MessageText, mustJSON(f.data))
			return werr
		},
		keepAlive: func() error { return conn.Ping(ctx) },
	})
	if werr != nil || ctx.Err() != nil {
		return errors.Join(werr, ctx.Err(), errors.New("connection ended"))
	}
	if prev := req.rec.PreviousResponseID; prev != nil && (status == "" || status == "failed") {
		delete(cached, *prev)
	}
	if !rec.Store && status == "completed" {
		// The output as the model read it (with the outputs of functions
		// the server ran), read before the deferred forget deletes it.
		stored, err := h.store.GetResponse(ctx, rec.ID)
		if err != nil {
			return refuse(err)
		}
		cached[rec.ID] = append(input, stored.History...)
	}
	return nil
}
