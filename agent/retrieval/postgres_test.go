package retrieval

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/db/dbtest"
)

// TestNeedleInHaystackPostgres is TestNeedleInHaystack on PostgreSQL,
// whose lexical ranking is ts_rank_cd over English tsvectors instead of
// FTS5's BM25: the same 250 documents, the same questions, the same bar
// (recall@5 >= 95%). Skipped without ASSISTANTD_TEST_POSTGRES.
func TestNeedleInHaystackPostgres(t *testing.T) {
	ctx := context.Background()
	url := dbtest.Database(t, func(url string) error {
		dir, err := os.MkdirTemp("", "retrieval-tmpl-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		s, err := db.Open(ctx, dir, db.WithDatabaseURL(url))
		if err != nil {
			return err
		}
		return s.Close()
	})
	s, err := db.Open(ctx, t.TempDir(), db.WithDatabaseURL(url))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	r := rand.New(rand.NewPCG(1, 2))
	const docs = 250
	var files []db.NewVectorStoreFile
	questions := make([]string, docs)
	ids := make([]string, docs)
	for i := range docs {
		doc, _, q := haystackDoc(r, i)
		f := upload(t, s, fmt.Sprintf("doc-%03d.txt", i), []byte(doc))
		files = append(files, db.NewVectorStoreFile{FileID: f.ID, Chunking: db.AutoChunking()})
		questions[i], ids[i] = q, f.ID
	}
	vs, err := s.CreateVectorStore(ctx, db.VectorStore{Name: "haystack"}, files)
	if err != nil {
		t.Fatal(err)
	}
	ingestAll(t, s, nil, vs.ID)
	searcher := NewSearcher(s, nil)
	found := 0
	for i, q := range questions {
		res, err := searcher.Search(ctx, Query{StoreIDs: []string{vs.ID}, Queries: []string{q}, MaxResults: 5})
		if err != nil {
			t.Fatal(err)
		}
		for _, hit := range res {
			if hit.FileID == ids[i] {
				found++
				break
			}
		}
	}
	rate := float64(found) / docs
	t.Logf("needles found in the top 5 on PostgreSQL: %d/%d (%.1f%%)", found, docs, 100*rate)
	if rate < 0.95 {
		t.Fatalf("recall@5 = %.3f, want >= 0.95", rate)
	}
}
