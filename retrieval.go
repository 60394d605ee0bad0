package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/agent/retrieval"
	"github.com/assistantd/assistantd/db"
)

// fileSearchWait bounds how long a file_search call waits for its stores'
// files still being ingested before it searches what is ready.
const fileSearchWait = time.Minute

// startRetrieval starts file_search's ingestion workers; stop waits for
// them after ctx ends. With embeddingsModel set, ingestion and search use
// that model's provider's /v1/embeddings (hybrid search); without it, BM25
// alone. With
// rewriteModel set, searches asking for rewrite_query have their queries
// rewritten by that model's provider's Chat Completions.
func startRetrieval(ctx context.Context, store *db.Store, providers *agent.Providers, embeddingsModel, rewriteModel string,
	log *slog.Logger) (svc *retrieval.Service, stop func(), err error) {
	var embed retrieval.Embedder
	if embeddingsModel != "" {
		p, ok := providers.For(embeddingsModel)
		if !ok {
			return nil, nil, fmt.Errorf("--embeddings-model %q: no provider serves it", embeddingsModel)
		}
		embed = retrieval.NewAPIEmbedder(p.Client, embeddingsModel)
	}
	rewriting := &retrieval.Rewriting{Log: log}
	if rewriteModel != "" {
		p, ok := providers.For(rewriteModel)
		if !ok {
			return nil, nil, fmt.Errorf("--query-rewrite-model %q: no provider serves it", rewriteModel)
		}
		rewriting.Rewriter = retrieval.NewChatRewriter(p.Client, rewriteModel)
		log.Info("rewrite_query enabled", "model", rewriteModel, "provider", p.Name)
	}
	svc = &retrieval.Service{Searcher: retrieval.NewSearcher(store, embed), Ingester: retrieval.NewIngester(store, embed, 2, log),
		Rewriting: rewriting}
	var wg sync.WaitGroup
	wg.Go(func() { svc.Ingester.Run(ctx) })
	return svc, wg.Wait, nil
}
