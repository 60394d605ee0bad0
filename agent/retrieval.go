package agent

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/assistantd/assistantd/agent/retrieval"
	"github.com/assistantd/assistantd/db"
)

// FileSearchWait is how long a file_search call waits for its stores' files
// still being ingested before it searches what is ready.
const FileSearchWait = time.Minute

// ingestWorkers is how many files are ingested at once.
const ingestWorkers = 2

// NewRetrieval builds file_search's retrieval over the store: ingestion
// (its workers start with the returned Service's Ingester.Run) and search.
// With embeddingsModel set, both use that model's provider's
// /v1/embeddings (hybrid search); without it, BM25 alone. With
// rewriteModel set, searches asking for rewrite_query have their queries
// rewritten by that model's provider's Chat Completions. A model no
// provider serves is an error, so a typo stops the start.
func NewRetrieval(store *db.Store, providers *Providers, embeddingsModel, rewriteModel string, log *slog.Logger) (*retrieval.Service, error) {
	var embed retrieval.Embedder
	if embeddingsModel != "" {
		p, ok := providers.For(embeddingsModel)
		if !ok {
			return nil, fmt.Errorf("--embeddings-model %q: no provider serves it", embeddingsModel)
		}
		embed = retrieval.NewAPIEmbedder(p.Client, embeddingsModel)
	}
	rewriting := &retrieval.Rewriting{Log: log}
	if rewriteModel != "" {
		p, ok := providers.For(rewriteModel)
		if !ok {
			return nil, fmt.Errorf("--query-rewrite-model %q: no provider serves it", rewriteModel)
		}
		rewriting.Rewriter = retrieval.NewChatRewriter(p.Client, rewriteModel)
		log.Info("rewrite_query enabled", "model", rewriteModel, "provider", p.Name)
	}
	return &retrieval.Service{Searcher: retrieval.NewSearcher(store, embed),
		Ingester: retrieval.NewIngester(store, embed, ingestWorkers, log), Rewriting: rewriting}, nil
}
