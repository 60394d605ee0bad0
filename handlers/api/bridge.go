package api

import (
	"context"

	"github.com/assistantd/assistantd/db"
)

// bridgeStore is what the bridges from the Assistants API to the Responses
// API need from the store: assistant versions served as prompt versions,
// threads continued as conversations, and containers.
type bridgeStore interface {
	GetAssistantVersion(ctx context.Context, id string, n int) (db.AssistantVersion, error)
	ThreadToConversation(ctx context.Context, threadID string) (db.Conversation, error)
	GetContainer(ctx context.Context, id string) (db.Container, error)
}
