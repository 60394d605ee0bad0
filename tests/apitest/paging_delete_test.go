package apitest

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
)

// TestDeleteWhilePaging deletes every item as an auto-paging iterator
// visits it, the way "delete all messages" loops are written. The SDK asks
// for each next page with after=<an id it just deleted>: the server must
// still know where that id stood.
func TestDeleteWhilePaging(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := context.Background()
	thread := newThread(t, s)
	var want []string
	for i := 0; i < 25; i++ {
		m, err := s.Client.Beta.Threads.Messages.New(ctx, thread, textMessage("message"))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, m.ID)
	}
	var visited []string
	iter := s.Client.Beta.Threads.Messages.ListAutoPaging(ctx, thread, openai.BetaThreadMessageListParams{Order: "asc", Limit: openai.Int(10)})
	for iter.Next() {
		m := iter.Current()
		visited = append(visited, m.ID)
		if _, err := s.Client.Beta.Threads.Messages.Delete(ctx, thread, m.ID); err != nil {
			t.Fatalf("delete %s: %v", m.ID, err)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatalf("paging after deletions: %v", err)
	}
	if diff := cmp.Diff(want, visited); diff != "" {
		t.Errorf("visited messages (-want +got):\n%s", diff)
	}
	page, err := s.Client.Beta.Threads.Messages.List(ctx, thread, openai.BetaThreadMessageListParams{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 0 || page.HasMore {
		t.Errorf("after deleting all: %d messages left, has_more %v", len(page.Data), page.HasMore)
	}

	// Assistants too (deleted through the same path).
	var created []string
	for i := 0; i < 12; i++ {
		a, err := s.Client.Beta.Assistants.New(ctx, openai.BetaAssistantNewParams{Model: "m"})
		if err != nil {
			t.Fatal(err)
		}
		created = append(created, a.ID)
	}
	var seen []string
	aiter := s.Client.Beta.Assistants.ListAutoPaging(ctx, openai.BetaAssistantListParams{Order: "asc", Limit: openai.Int(5)})
	for aiter.Next() {
		seen = append(seen, aiter.Current().ID)
		if _, err := s.Client.Beta.Assistants.Delete(ctx, aiter.Current().ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := aiter.Err(); err != nil {
		t.Fatalf("paging assistants after deletions: %v", err)
	}
	if diff := cmp.Diff(created, seen); diff != "" {
		t.Errorf("visited assistants (-want +got):\n%s", diff)
	}
}
