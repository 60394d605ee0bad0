package retrieval

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/pkoukk/tiktoken-go"
	tiktoken_loader "github.com/pkoukk/tiktoken-go-loader"
)

// encoder is o200k_base from the embedded offline copy (no network), as
// the run engine counts tokens.
var encoder = sync.OnceValue(func() *tiktoken.Tiktoken {
	tiktoken.SetBpeLoader(tiktoken_loader.NewOfflineLoader())
	enc, err := tiktoken.GetEncoding(tiktoken.MODEL_O200K_BASE)
	if err != nil {
		panic(fmt.Sprintf("load embedded tokenizer: %v", err)) // embedded data: cannot fail at run time
	}
	return enc
})

// LoadTokenizer loads the embedded tokenizer, which the first count
// would otherwise wait for.
func LoadTokenizer() { encoder() }

// pieceTokens caches the token count of each pre-tokenized piece. The
// tokenizer's own pre-tokenizer (a backtracking regexp) manages about
// 1 MB/s; splitting into the same kind of pieces here and encoding each
// distinct piece once makes chunking run at tens of MB/s on real text,
// whose words repeat. Each piece's count is the tokenizer's own.
var pieceTokens = struct {
	sync.Mutex
	m map[string]int
}{m: map[string]int{}}

// maxCachedPieces bounds the cache; it is cleared when full.
const maxCachedPieces = 500_000

func countPiece(p string) int {
	pieceTokens.Lock()
	n, ok := pieceTokens.m[p]
	pieceTokens.Unlock()
	if ok {
		return n
	}
	n = len(encoder().EncodeOrdinary(p))
	pieceTokens.Lock()
	if len(pieceTokens.m) >= maxCachedPieces {
		clear(pieceTokens.m)
	}
	pieceTokens.m[strings.Clone(p)] = n
	pieceTokens.Unlock()
	return n
}

// maxPiece bounds a piece, so a long run without spaces (base64, minified
// code) is split rather than encoded whole.
const maxPiece = 64

// pieces splits s the way o200k's pre-tokenizer does, near enough: an
// optional leading space or punctuation mark with a run of letters (and a
// contraction), runs of up to three digits, runs of punctuation, runs of
// white space. No piece is longer than maxPiece bytes plus a contraction,
// so encoding a piece (whose merge loop is quadratic in its length) costs
// a bounded time, and splitting and counting a text cost O(len(s)). It
// calls fn with each piece's byte offsets until fn returns false.
func pieces(s string, fn func(start, end int) bool) {
	i := 0
	for i < len(s) {
		start := i
		r, w := decode(s[i:])
		switch {
		case isLetter(r) || ((r == ' ' || isPunct(r)) && letterAt(s, i+w)):
			i += w
			for i < len(s) && i-start < maxPiece {
				r, w = decode(s[i:])
				if !isLetter(r) {
					break
				}
				i += w
			}
			if i < len(s) && s[i] == '\'' {
				for _, c := range []string{"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"} {
					if strings.HasPrefix(s[i:], c) {
						i += len(c)
						break
					}
				}
			}
		case unicode.IsDigit(r):
			for n := 0; n < 3 && i < len(s); n++ {
				r, w = decode(s[i:])
				if !unicode.IsDigit(r) {
					break
				}
				i += w
			}
		case r == ' ' && i+1 < len(s) && punctAt(s, i+1):
			i++
			i = punctRun(s, i, start)
		case unicode.IsSpace(r):
			for i < len(s) && i-start < maxPiece {
				r, w = decode(s[i:])
				if !unicode.IsSpace(r) {
					break
				}
				i += w
			}
			// A space before a word belongs to the word.
			if i < len(s) && i-start > 1 && s[i-1] == ' ' && letterAt(s, i) {
				i--
			}
		default:
			i = punctRun(s, i, start)
		}
		if !fn(start, i) {
			return
		}
	}
}

// punctRun returns the end of the run of punctuation at i, with the line
// breaks that follow it, maxPiece bytes at most.
func punctRun(s string, i, start int) int {
	_, w := decode(s[i:])
	i += w
	for i < len(s) && i-start < maxPiece {
		r, w := decode(s[i:])
		if !isPunct(r) {
			break
		}
		i += w
	}
	for i < len(s) && i-start < maxPiece && (s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

func punctAt(s string, i int) bool {
	r, _ := utf8.DecodeRuneInString(s[i:])
	return isPunct(r) && !letterAt(s, i+utf8.RuneLen(r))
}

// asciiClass classifies ASCII bytes, so the common case skips the
// Unicode tables.
var asciiClass = func() (c [128]byte) {
	for b := range 128 {
		r := rune(b)
		switch {
		case unicode.IsLetter(r):
			c[b] = 'L'
		case unicode.IsDigit(r):
			c[b] = 'N'
		case unicode.IsSpace(r):
			c[b] = 'S'
		default:
			c[b] = 'P'
		}
	}
	return c
}()

func isPunct(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiClass[r] == 'P'
	}
	return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsSpace(r) && !unicode.IsMark(r)
}

func isLetter(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiClass[r] == 'L'
	}
	return unicode.IsLetter(r) || unicode.IsMark(r)
}

func letterAt(s string, i int) bool {
	if i >= len(s) {
		return false
	}
	if s[i] < utf8.RuneSelf {
		return asciiClass[s[i]] == 'L'
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return unicode.IsLetter(r)
}

// decode is utf8.DecodeRuneInString with an ASCII fast path.
func decode(s string) (rune, int) {
	if s[0] < utf8.RuneSelf {
		return rune(s[0]), 1
	}
	return utf8.DecodeRuneInString(s)
}

// CountTokens counts s's tokens piece by piece, in time linear in len(s).
func CountTokens(s string) int {
	n := 0
	pieces(s, func(a, b int) bool {
		n += countPiece(s[a:b])
		return true
	})
	return n
}

// Chunk cuts text into chunks of at most size tokens, each starting
// size-overlap tokens after the previous one (so consecutive chunks share
// overlap tokens). Chunks are substrings of text, cut between pieces.
func Chunk(text string, size, overlap int) []string {
	out, _ := chunk(context.Background(), text, size, overlap, math.MaxInt)
	return out
}

// chunk is Chunk in one pass over text's pieces, holding only the current
// chunk's pieces: it stops with ctx, and with an error once text has more
// than maxTokens (a *FileError).
func chunk(ctx context.Context, text string, size, overlap, maxTokens int) ([]string, error) {
	spans, err := chunkSpans(ctx, text, size, overlap, maxTokens)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(spans))
	for i, sp := range spans {
		out[i] = strings.TrimSpace(text[sp.start:sp.end])
	}
	return out, nil
}

// span is a chunk: its byte offsets in the text, its tokens and pieces.
type span struct{ start, end, tokens, pieces int }

func chunkSpans(ctx context.Context, text string, size, overlap, maxTokens int) ([]span, error) {
	if size <= 0 {
		size = 800
	}
	if overlap < 0 || overlap > size/2 {
		overlap = size / 2
	}
	type piece struct{ start, end, tokens int }
	var (
		out    []span
		window []piece // the pieces of the chunk being filled
		wtok   int     // their tokens
		total  int
		count  int
		err    error
	)
	blank := func(p piece) bool { return strings.TrimSpace(text[p.start:p.end]) == "" }
	closeChunk := func() {
		out = append(out, span{window[0].start, window[len(window)-1].end, wtok, len(window)})
	}
	// emit closes the chunk in window and keeps, as the next one's start,
	// the pieces at its end that fit in overlap (never all of them, so
	// chunks advance), less any white space they start with.
	emit := func() {
		closeChunk()
		keep, back := len(window), 0
		for keep > 1 && back+window[keep-1].tokens <= overlap {
			keep--
			back += window[keep].tokens
		}
		window = window[keep:]
		for len(window) > 0 && blank(window[0]) {
			window = window[1:]
		}
		wtok = 0
		for _, p := range window {
			wtok += p.tokens
		}
	}
	// A local cache first: most pieces repeat within a text, and it needs
	// no lock.
	local := make(map[string]int, 4096)
	pieces(text, func(a, b int) bool {
		if count++; count%(16*checkEvery) == 0 && ctx.Err() != nil {
			err = ctx.Err()
			return false
		}
		s := text[a:b]
		n, ok := local[s]
		if !ok {
			n = countPiece(s)
			if len(local) >= 1<<18 {
				clear(local)
			}
			local[s] = n
		}
		if total += n; total > maxTokens {
			err = &FileError{CodeInvalid, fmt.Sprintf("The file has more than %d tokens, the most a file can hold for search.", maxTokens)}
			return false
		}
		p := piece{a, b, n}
		for len(window) > 0 && wtok+p.tokens > size {
			emit()
		}
		if len(window) == 0 && blank(p) {
			return true // white space at a chunk's start
		}
		window = append(window, p)
		wtok += p.tokens
		return true
	})
	if err != nil {
		return nil, err
	}
	if len(window) > 0 {
		closeChunk()
	}
	return out, nil
}
