package retrieval

import (
	"context"
	"fmt"

	"github.com/openai/openai-go/v3"
)

// Embedder turns texts into vectors, one per text, in order.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

// APIEmbedder calls an OpenAI-compatible /v1/embeddings endpoint (OpenAI,
// Ollama, vLLM …) through openai-go, which retries 429s and 5xx.
type APIEmbedder struct {
	client openai.Client
	model  string
}

// NewAPIEmbedder embeds with model through client.
func NewAPIEmbedder(client openai.Client, model string) *APIEmbedder {
	return &APIEmbedder{client: client, model: model}
}

// Embed implements Embedder.
func (e *APIEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	res, err := e.client.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: e.model,
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: texts},
	})
	if err != nil {
		return nil, fmt.Errorf("embeddings (%s): %w", e.model, err)
	}
	if len(res.Data) != len(texts) {
		return nil, fmt.Errorf("embeddings (%s): %d vectors for %d inputs", e.model, len(res.Data), len(texts))
	}
	out := make([][]float32, len(texts))
	for _, d := range res.Data {
		if d.Index < 0 || int(d.Index) >= len(texts) {
			return nil, fmt.Errorf("embeddings (%s): index %d out of range", e.model, d.Index)
		}
		v := make([]float32, len(d.Embedding))
		for i, f := range d.Embedding {
			v[i] = float32(f)
		}
		out[d.Index] = v
	}
	return out, nil
}
