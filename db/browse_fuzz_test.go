package db

import (
	"context"
	"strings"
	"testing"
)

// FuzzFTSQuery searches real threads with whatever a person may type in
// the threads search box: the query FTS5 gets must always parse, and a
// word typed around any junk still finds the thread holding it.
func FuzzFTSQuery(f *testing.F) {
	for _, s := range searchSeeds {
		f.Add(s)
	}
	s := openTest(f)
	f.Fuzz(searchJunk(s))
}

var searchSeeds = []string{
	"invoice", "INVOICE overdue", "\x00", "invoice\x00", `"`, `""`, `"invoice"`, "NEAR(invoice 42)", "invoice*", "^invoice",
	"-invoice", "col:invoice", "invoice AND overdue", "invoice OR", "(", ")", "{thread_id}: x", "a\x01b", "\xff\xfe",
	"invoice \x1f 42", "'", "*", "+", "\u2028", "é", "\\", "invoice\u200b", "\t\n", "!", "&", "|", ":*", "<->", "don't",
}

// TestSearchJunk runs the fuzz seeds on both stores (the fuzz target runs
// on SQLite).
func TestSearchJunk(t *testing.T) {
	eachStore(t, func(t *testing.T) {
		check := searchJunk(openTest(t))
		for _, q := range searchSeeds {
			check(t, q)
		}
	})
}

// searchJunk stores a thread in s and returns a check that searching for
// q fails nothing and that q around a word of the thread still finds it.
func searchJunk(s *Store) func(t *testing.T, q string) {
	ctx := WithProject(context.Background(), DefaultProjectID)
	th, _, err := s.CreateThread(ctx, Thread{}, []Message{{Role: "user", Status: "completed",
		Content: []ContentPart{{Type: "text", Text: &Text{Value: "invoice 42 overdue"}}}}})
	if err != nil {
		panic(err)
	}
	return func(t *testing.T, q string) {
		if _, _, err := s.BrowseThreads(ctx, ThreadFilter{Query: q, Limit: 5}); err != nil {
			t.Fatalf("search %q (FTS5 query %q): %v", q, ftsQuery(searchTerms(q)), err)
		}
		// Junk on either side of a word, separated by a space, does not
		// hide the word (unless the junk itself is a word the text lacks).
		if strings.IndexFunc(q, func(r rune) bool { return r > ' ' && r != 0x7f && r < 0x80 || r >= 0x80 }) >= 0 {
			return
		}
		rows, _, err := s.BrowseThreads(ctx, ThreadFilter{Query: q + " invoice " + q, Limit: 5})
		if err != nil || len(rows) != 1 || rows[0].ID != th.ID {
			t.Fatalf("search %q around a word: %d rows, %v", q, len(rows), err)
		}
	}
}
