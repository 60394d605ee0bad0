package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
)

// Compaction: POST /v1/responses/compact asks the model (through the
// engine, as an unstored response) to summarise a conversation, and
// returns the conversation's user messages followed by a compaction item
// carrying the summary. A later request sends that output as its input;
// the compaction item reaches the model as the summary. encrypted_content
// is opaque to clients, as OpenAI's is, but not encrypted: it is the
// summary, encoded.

// compactInstructions steer the summary.
const compactInstructions = "Summarize the conversation so far so that it can be continued from your summary alone. " +
	"Keep every fact, name, number, decision, commitment and open question; leave out pleasantries. " +
	"Write it as notes, in the conversation's language."

// compactFields are the parameters of POST /v1/responses/compact.
var compactFields = []string{"model", "input", "previous_response_id", "instructions", "prompt_cache_key",
	"prompt_cache_retention", "prompt_cache_options", "service_tier"}

// CompactResponse handles POST /v1/responses/compact.
func (h *Responses) CompactResponse(c *echo.Context) error {
	ctx := c.Request().Context()
	fields, err := readObject(c.Request(), compactFields, false)
	if err != nil {
		return err
	}
	for _, k := range []string{"prompt_cache_key", "prompt_cache_retention", "prompt_cache_options", "service_tier"} {
		delete(fields, k) // accepted; nothing here caches prompts or tiers
	}
	req, err := h.parseFields(ctx, fields, false, nil)
	if err != nil {
		return err
	}
	var items []json.RawMessage
	if prev := req.rec.PreviousResponseID; prev != nil {
		if items, err = h.store.ResponseHistory(ctx, *prev); err != nil {
			return respond.Internal(err)
		}
	}
	items = append(items, req.input...)

	// The summary is an unstored response of its own.
	run := req.run
	run.Instructions = compactInstructions
	if req.run.Instructions != "" {
		run.Instructions += "\n\nThe conversation's own instructions were:\n" + req.run.Instructions
	}
	run.Tools, run.ToolResources, run.ToolChoice, run.ResponseFormat = nil, nil, nil, nil
	rec := db.ResponseRecord{ID: db.NewID("resp_"), Store: false, Echo: map[string]json.RawMessage{}}
	summaryInput := append(append([]json.RawMessage{}, items...),
		textInput("Summarize the conversation above, as instructed."))
	created, err := h.createResponse(ctx, db.Thread{Metadata: db.Metadata{"response_id": rec.ID, "purpose": "compaction"}},
		run, rec, summaryInput)
	if err != nil {
		return respond.RunErr(err, "") // the project's settings or rate limit refused it, or a failure
	}
	rec.RunID, rec.ThreadID, rec.CreatedAt = created.ID, created.ThreadID, created.CreatedAt
	defer h.forget(ctx, rec)
	if err := h.waitFinished(ctx, created.ID); err != nil {
		return err
	}
	stored, err := h.store.GetResponse(ctx, rec.ID)
	if err != nil {
		return respond.Internal(err)
	}
	o, err := h.load(ctx, stored, nil)
	if err != nil {
		return respond.Internal(err)
	}
	if o.Status != "completed" {
		msg := "The model could not summarize the conversation."
		if o.Error != nil {
			msg += " " + o.Error.Message
		}
		return &respond.Error{Status: http.StatusInternalServerError, Type: "server_error", Message: msg,
			Err: fmt.Errorf("compaction response %s ended %s", rec.ID, o.Status)}
	}
	summary := outputTextOf(o.Output)

	out := []json.RawMessage{}
	for _, it := range items {
		var head struct {
			Type string `json:"type"`
			Role string `json:"role"`
		}
		_ = json.Unmarshal(it, &head)
		if head.Type == "message" && head.Role == "user" {
			out = append(out, it)
		}
	}
	out = append(out, mustJSON(map[string]any{"type": "compaction", "id": db.NewID("cmp_"),
		"encrypted_content": agent.EncodeSummary(summary), "created_by": "assistantd"}))
	res := map[string]any{"id": rec.ID, "object": "response.compaction", "created_at": rec.CreatedAt, "output": out,
		"usage": o.Usage}
	if o.Usage == nil {
		res["usage"] = &usage{}
	}
	return c.JSON(http.StatusOK, res)
}

// outputTextOf joins the output_text of a response's messages.
func outputTextOf(items []json.RawMessage) string {
	var parts []string
	for _, raw := range items {
		var it struct {
			Type    string `json:"type"`
			Content []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content"`
		}
		if json.Unmarshal(raw, &it) != nil || it.Type != "message" {
			continue
		}
		for _, c := range it.Content {
			if c.Type == "output_text" {
				parts = append(parts, c.Text)
			}
		}
	}
	return strings.Join(parts, "\n")
}
