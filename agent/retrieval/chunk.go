package retrieval

import (
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
// white space. It calls fn with each piece's byte offsets.
func pieces(s string, fn func(start, end int)) {
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
		fn(start, i)
	}
}

// punctRun returns the end of the run of punctuation at i, with the line
// breaks that follow it.
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
	for i < len(s) && (s[i] == '\n' || s[i] == '\r') {
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

// CountTokens counts s's tokens piece by piece.
func CountTokens(s string) int {
	n := 0
	pieces(s, func(a, b int) { n += countPiece(s[a:b]) })
	return n
}

// Chunk cuts text into chunks of at most size tokens, each starting
// size-overlap tokens after the previous one (so consecutive chunks share
// overlap tokens). Chunks are substrings of text, cut between pieces.
func Chunk(text string, size, overlap int) []string {
	if size <= 0 {
		size = 800
	}
	if overlap < 0 || overlap > size/2 {
		overlap = size / 2
	}
	if len(text) > math.MaxInt32 {
		text = text[:math.MaxInt32] // offsets are int32; ingestion reads at most 512 MiB
	}
	type piece struct{ start, end, tokens int32 }
	ps := make([]piece, 0, len(text)/4+1)
	// A local cache first: most pieces repeat within a text, and it needs
	// no lock.
	local := make(map[string]int32, 4096)
	pieces(text, func(a, b int) {
		p := text[a:b]
		n, ok := local[p]
		if !ok {
			n = int32(countPiece(p))
			local[p] = n
		}
		ps = append(ps, piece{int32(a), int32(b), n})
	})
	var out []string
	for first := 0; first < len(ps); {
		// Skip pure white space at a chunk's start.
		for first < len(ps) && strings.TrimSpace(text[ps[first].start:ps[first].end]) == "" {
			first++
		}
		if first >= len(ps) {
			break
		}
		tokens, last := int32(0), first
		for last < len(ps) && (int(tokens+ps[last].tokens) <= size || last == first) {
			tokens += ps[last].tokens
			last++
		}
		out = append(out, strings.TrimSpace(text[ps[first].start:ps[last-1].end]))
		if last >= len(ps) {
			break
		}
		// The next chunk starts overlap tokens before this one's end.
		next, back := last, int32(0)
		for next > first+1 && int(back+ps[next-1].tokens) <= overlap {
			next--
			back += ps[next].tokens
		}
		first = next
	}
	return out
}
