package retrieval

import (
	"math"
	"strings"
	"testing"
	"unicode"
)

// maxPieceBytes bounds a piece: maxPiece, the bytes of the rune that
// crosses it, and a contraction.
const maxPieceBytes = maxPiece + 3 + 3

// pieceSeeds are inputs whose runs once escaped the piece bound (issue
// 21: a title followed by 200,000 newlines) or are otherwise odd.
var pieceSeeds = []string{
	"# Title.\n" + strings.Repeat("\n", 20000),
	strings.Repeat("x", 10000),
	strings.Repeat(" ", 5000) + "word",
	strings.Repeat("!?", 3000) + "\r\n\r\n",
	strings.Repeat("東京", 2000),
	strings.Repeat("1", 1000),
	" " + strings.Repeat(".", 500) + strings.Repeat("\r", 500),
	"it's they're we've I'm you'll he'd",
	sampleText,
	"\xff\xfe invalid \x80 utf-8",
}

// FuzzPieces: pieces tile the text, none longer than maxPieceBytes (so
// encoding one costs a bounded time and counting is linear), and a text's
// count is at most one token per byte.
func FuzzPieces(f *testing.F) {
	for _, s := range pieceSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		at := 0
		pieces(s, func(a, b int) bool {
			if a != at || b <= a {
				t.Fatalf("piece [%d,%d) after %d", a, b, at)
			}
			if b-a > maxPieceBytes {
				t.Fatalf("piece [%d,%d) is %d bytes: %q", a, b, b-a, s[a:b])
			}
			at = b
			return true
		})
		if at != len(s) {
			t.Fatalf("pieces end at %d of %d", at, len(s))
		}
		if n := CountTokens(s); n > len(s) || (n == 0) != (s == "") {
			t.Fatalf("CountTokens = %d for %d bytes", n, len(s))
		}
	})
}

// TestPieceBound runs the fuzz seeds at full size: the newline run of the
// issue is cut like any other.
func TestPieceBound(t *testing.T) {
	for _, s := range []string{"# Title.\n" + strings.Repeat("\n", 200000), strings.Repeat("x", 1<<20)} {
		longest := 0
		pieces(s, func(a, b int) bool { longest = max(longest, b-a); return true })
		if longest > maxPieceBytes {
			t.Errorf("%q...: a piece of %d bytes", s[:12], longest)
		}
	}
}

// FuzzChunk: chunks start in order and advance, cover every non-space
// byte of the text, hold at most size tokens unless a single piece is
// larger, and are the trimmed text of their spans.
func FuzzChunk(f *testing.F) {
	for i, s := range pieceSeeds {
		f.Add(s, uint16(5+i*13), uint16(i*3))
	}
	f.Add(strings.Repeat("word ", 3000), uint16(100), uint16(50))
	f.Fuzz(func(t *testing.T, text string, size, overlap uint16) {
		sz, ov := int(size%2000), int(overlap%2000)
		spans, err := chunkSpans(testCtx(), text, sz, ov, math.MaxInt)
		if err != nil {
			t.Fatal(err)
		}
		if sz <= 0 {
			sz = 800
		}
		covered := make([]bool, len(text))
		prev := -1
		for i, sp := range spans {
			if sp.start <= prev || sp.end <= sp.start || sp.end > len(text) {
				t.Fatalf("span %d [%d,%d) after start %d", i, sp.start, sp.end, prev)
			}
			prev = sp.start
			if sp.tokens > sz && sp.pieces > 1 {
				t.Fatalf("span %d has %d tokens in %d pieces, size %d", i, sp.tokens, sp.pieces, sz)
			}
			for j := sp.start; j < sp.end; j++ {
				covered[j] = true
			}
		}
		for j, c := range []byte(text) {
			if !covered[j] && c < 0x80 && !unicode.IsSpace(rune(c)) {
				t.Fatalf("byte %d (%q) is in no chunk", j, c)
			}
		}
		chunks := Chunk(text, int(size%2000), int(overlap%2000))
		if len(chunks) != len(spans) {
			t.Fatalf("%d chunks, %d spans", len(chunks), len(spans))
		}
		for i, c := range chunks {
			if c != strings.TrimSpace(text[spans[i].start:spans[i].end]) {
				t.Fatalf("chunk %d is not its span", i)
			}
		}
	})
}
