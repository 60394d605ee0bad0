package upstream

import (
	"encoding/json"
	"hash/fnv"
	"net/http"
	"strings"
	"unicode"
)

// EmbeddingDims is the size of the fake embeddings.
const EmbeddingDims = 64

// synonyms map words to a shared concept, so tests can tell vector search
// (which finds "car" for "automobile") from BM25 (which does not).
var synonyms = map[string]string{"automobile": "car", "vehicle": "car", "cars": "car", "puppy": "dog", "canine": "dog", "dogs": "dog"}

// Embed is the fake model's embedding of text: a hashed bag of words
// (synonyms folded) in EmbeddingDims dimensions.
func Embed(text string) []float64 {
	v := make([]float64, EmbeddingDims)
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		if s, ok := synonyms[w]; ok {
			w = s
		}
		h := fnv.New32a()
		h.Write([]byte(w))
		v[h.Sum32()%EmbeddingDims]++
	}
	return v
}

// embeddings answers POST /v1/embeddings with Embed of each input.
func (s *Server) embeddings(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model string          `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody("bad json: "+err.Error()))
		return
	}
	var inputs []string
	if err := json.Unmarshal(req.Input, &inputs); err != nil {
		var one string
		if err := json.Unmarshal(req.Input, &one); err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody("input must be a string or an array of strings"))
			return
		}
		inputs = []string{one}
	}
	s.mu.Lock()
	s.embedded += len(inputs)
	s.mu.Unlock()
	data := make([]map[string]any, len(inputs))
	tokens := 0
	for i, in := range inputs {
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": Embed(in)}
		tokens += len(strings.Fields(in))
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "model": req.Model, "data": data,
		"usage": map[string]any{"prompt_tokens": tokens, "total_tokens": tokens}})
}

// Embedded counts the texts embedded so far.
func (s *Server) Embedded() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.embedded
}
