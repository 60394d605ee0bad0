package retrieval

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

const sampleText = `Retrieval-augmented generation (RAG) pairs a language model with a search index. It's simple: the
model's question goes to the index, the best passages come back, and they're quoted in the answer.
In 2024, 37.5% of deployments used BM25; the rest mixed dense vectors with it — "hybrid" search.
func main() { fmt.Println("hello, world") } // naïve café résumé 東京 Ünïcödé
`

// TestCountTokensMatchesTokenizer checks that counting piece by piece stays
// within 3% of the tokenizer's own count on mixed prose, numbers, code and
// non-ASCII text.
func TestCountTokensMatchesTokenizer(t *testing.T) {
	text := strings.Repeat(sampleText, 50)
	got, want := CountTokens(text), len(encoder().EncodeOrdinary(text))
	if diff := math.Abs(float64(got-want)) / float64(want); diff > 0.03 {
		t.Fatalf("CountTokens = %d, tokenizer = %d (%.1f%% off)", got, want, 100*diff)
	}
}

func TestChunkSizesAndOverlap(t *testing.T) {
	// Unique sentences, so that a shared passage can only come from overlap.
	var b strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&b, "Sentence %d says the word w%dx. ", i, i*7)
	}
	text := b.String()
	for _, tc := range []struct{ size, overlap int }{{800, 400}, {100, 0}, {100, 50}, {300, 20}} {
		chunks := Chunk(text, tc.size, tc.overlap)
		if len(chunks) < 2 {
			t.Fatalf("%v: %d chunks", tc, len(chunks))
		}
		for i, c := range chunks {
			// Counted on its own, a chunk's edges may split into pieces
			// differently from the whole text: allow a token per 100.
			if n := CountTokens(c); n > tc.size+tc.size/100 {
				t.Errorf("%v: chunk %d has %d tokens", tc, i, n)
			}
			if !strings.Contains(text, c) {
				t.Errorf("%v: chunk %d is not a substring of the text", tc, i)
			}
		}
		// Every part of the text is in some chunk: the chunks' starts
		// advance and the last one reaches the end.
		if !strings.HasSuffix(strings.TrimSpace(text), chunks[len(chunks)-1]) {
			t.Errorf("%v: the last chunk does not end the text", tc)
		}
		if tc.overlap > 0 {
			tail := chunks[0][len(chunks[0])-20:]
			if !strings.Contains(chunks[1], tail) {
				t.Errorf("%v: chunk 1 does not overlap chunk 0's end %q", tc, tail)
			}
		} else if strings.Contains(chunks[1], chunks[0][len(chunks[0])-40:]) {
			t.Errorf("%v: chunks overlap without overlap", tc)
		}
	}
	if got := Chunk("", 800, 400); len(got) != 0 {
		t.Errorf("empty text: %d chunks", len(got))
	}
	if got := Chunk("short", 800, 400); len(got) != 1 || got[0] != "short" {
		t.Errorf("short text: %q", got)
	}
}
