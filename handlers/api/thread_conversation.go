package api

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/respond"
)

// ThreadToConversation handles POST /v1/threads/{thread_id}/conversation
// (an assistantd extension): a new conversation whose items are the
// thread's history in order (messages; function calls with their outputs;
// file_search and code_interpreter calls), with the thread id in its
// metadata, so that responses.create({conversation}) continues the thread.
// The thread is left unchanged. A thread whose run is still working is a
// 400: its history is not settled yet.
func (h *Responses) ThreadToConversation(c *echo.Context) error {
	id := c.Param("thread_id")
	if err := checkID("thread_id", id, "thread_"); err != nil {
		return err
	}
	if _, err := readObject(c.Request(), nil, true); err != nil {
		return err
	}
	conv, err := h.store.ThreadToConversation(c.Request().Context(), id)
	var busy *db.ThreadBusyError
	if errors.As(err, &busy) {
		return respond.Invalid("thread_id", "thread_locked",
			"Thread %s has an active run (%s); convert it once the run has finished.", busy.ThreadID, busy.RunID)
	}
	if err != nil {
		return respond.StoreErr(err, "thread", id)
	}
	return c.JSON(http.StatusOK, conv)
}
