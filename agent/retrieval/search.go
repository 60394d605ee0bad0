package retrieval

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode"

	"github.com/assistantd/assistantd/db"
)

// Searcher searches vector stores: BM25 through FTS5 always, and with an
// embedder also cosine similarity over chunk vectors (held in memory per
// store and reloaded when chunks change, or searched by pgvector in
// PostgreSQL when the store has it), merged by reciprocal-rank fusion.
type Searcher struct {
	store *db.Store
	embed Embedder

	mu       sync.Mutex
	vecs     map[string]*storeVectors
	total    int // chunks in all stores at totalGen; -1 unknown
	totalGen int64
}

// NewSearcher returns a searcher; embed may be nil (BM25 only).
func NewSearcher(store *db.Store, embed Embedder) *Searcher {
	return &Searcher{store: store, embed: embed, vecs: map[string]*storeVectors{}, total: -1}
}

// Hybrid reports whether searches use embeddings.
func (s *Searcher) Hybrid() bool { return s.embed != nil }

// Query is one search.
type Query struct {
	StoreIDs       []string
	Queries        []string
	MaxResults     int     // 1..50; 0 means 10
	ScoreThreshold float64 // 0..1
	Filter         *Filter
}

// Result is one retrieved chunk.
type Result struct {
	VectorStoreID string
	FileID        string
	Filename      string
	Attributes    db.Attributes
	Text          string
	Score         float64 // 0..1, higher is better
}

// rrfK is reciprocal-rank fusion's constant (Cormack et al.).
const rrfK = 60

// bm25Score maps a chunk's BM25 score x (positive, unbounded; best is the
// query's best) into 0..1: half is x relative to the best chunk, half the
// share of the query's terms the chunk contains. BM25 alone cannot be
// normalised absolutely (in a store of one file every term is in every
// document and BM25 is near zero), and relative scores alone would give
// the best chunk 1 however poorly it matches.
func bm25Score(query, text string, x, best float64) float64 {
	rel := 1.0
	if best > 0 {
		rel = math.Min(1, x/best)
	}
	return 0.5*rel + 0.5*coverage(query, text)
}

// coverage is the share of the query's search terms found in text
// (as substrings, so "hearts" finds "heart" … "hearts", and stems match).
func coverage(query, text string) float64 {
	terms := queryTerms(query)
	if len(terms) == 0 {
		return 0
	}
	lower := strings.ToLower(text)
	n := 0
	for _, t := range terms {
		if strings.Contains(lower, stem(t)) {
			n++
		}
	}
	return float64(n) / float64(len(terms))
}

// stem strips a plural or verb ending, enough for coverage's substring
// test ("octopuses" → "octopus").
func stem(w string) string {
	for _, suf := range []string{"es", "s", "ing", "ed"} {
		if len(w) > len(suf)+3 && strings.HasSuffix(w, suf) {
			return strings.TrimSuffix(w, suf)
		}
	}
	return w
}

// Search runs q and returns the best chunks, best first.
func (s *Searcher) Search(ctx context.Context, q Query) ([]Result, error) {
	if q.MaxResults <= 0 {
		q.MaxResults = 10
	}
	files, err := s.store.SearchableFiles(ctx, q.StoreIDs)
	if err != nil {
		return nil, err
	}
	type fileKey struct{ store, file string }
	byKey := make(map[fileKey]db.SearchableFile, len(files))
	var allowed []string // nil: every file
	if q.Filter != nil {
		allowed = []string{}
	}
	for _, f := range files {
		if q.Filter != nil && !q.Filter.Match(f.Attributes) {
			continue
		}
		byKey[fileKey{f.VectorStoreID, f.FileID}] = f
		if allowed != nil && !slices.Contains(allowed, f.FileID) {
			allowed = append(allowed, f.FileID)
		}
	}
	if len(byKey) == 0 {
		return []Result{}, nil
	}
	candidates := max(4*q.MaxResults, 50)
	type scored struct {
		hit   db.ChunkHit
		score float64
	}
	fused := map[int64]*scored{}
	lists := 0
	for _, query := range q.Queries {
		match, err := s.matchExpr(ctx, query)
		if err != nil {
			return nil, err
		}
		hits, err := s.store.SearchChunks(ctx, q.StoreIDs, allowed, match, candidates)
		if err != nil {
			return nil, err
		}
		lists++
		for rank, h := range hits {
			sc := fused[h.ID]
			if sc == nil {
				sc = &scored{hit: h}
				fused[h.ID] = sc
			}
			if s.embed != nil {
				sc.score += 1.0 / float64(rrfK+rank+1)
			} else {
				sc.score = math.Max(sc.score, bm25Score(query, h.Text, -h.Rank, -hits[0].Rank))
			}
		}
	}
	if s.embed != nil {
		vecs, err := s.embed.Embed(ctx, q.Queries)
		if err != nil {
			return nil, fmt.Errorf("embed query: %w", err)
		}
		var missing []int64
		searchable := make([]db.StoreFile, 0, len(byKey))
		for k := range byKey {
			searchable = append(searchable, db.StoreFile{VectorStoreID: k.store, FileID: k.file})
		}
		for _, v := range vecs {
			lists++
			nearest, err := s.nearest(ctx, q.StoreIDs, v, candidates, searchable, func(store, file string) bool {
				_, ok := byKey[fileKey{store, file}]
				return ok
			})
			if err != nil {
				return nil, err
			}
			for rank, n := range nearest {
				sc := fused[n.id]
				if sc == nil {
					sc = &scored{hit: db.ChunkHit{ID: n.id}}
					fused[n.id] = sc
					missing = append(missing, n.id)
				}
				sc.score += 1.0 / float64(rrfK+rank+1)
			}
		}
		texts, err := s.store.ChunksByID(ctx, missing)
		if err != nil {
			return nil, err
		}
		for _, id := range missing {
			if h, ok := texts[id]; ok {
				fused[id].hit = h
			} else {
				delete(fused, id) // removed since the index was loaded
			}
		}
		// The best possible fused score is first place in every list.
		best := float64(lists) / float64(rrfK+1)
		for _, sc := range fused {
			sc.score = math.Min(1, sc.score/best)
		}
	}
	out := make([]Result, 0, len(fused))
	for _, sc := range fused {
		f, ok := byKey[fileKey{sc.hit.VectorStoreID, sc.hit.FileID}]
		if !ok || sc.score < q.ScoreThreshold {
			continue
		}
		out = append(out, Result{VectorStoreID: f.VectorStoreID, FileID: f.FileID, Filename: f.Filename,
			Attributes: f.Attributes, Text: sc.hit.Text, Score: sc.score})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score > out[j].Score
		}
		return out[i].FileID < out[j].FileID
	})
	if len(out) > q.MaxResults {
		out = out[:q.MaxResults]
	}
	if err := s.store.TouchVectorStores(ctx, q.StoreIDs); err != nil {
		return nil, err
	}
	return out, nil
}

// commonShare is the share of all chunks above which a term counts as
// common, and commonFloor the fewest matches that can make it so.
const (
	commonShare = 0.02
	commonFloor = 200
)

// matchExpr is MatchExpr without the query's common terms. A term found in
// more than 2% of the chunks adds almost nothing to BM25 (its IDF is near
// zero) but makes FTS5 score every chunk containing it, which at 100,000
// chunks costs a second instead of milliseconds. When every term is common
// the chunks must contain all of them.
func (s *Searcher) matchExpr(ctx context.Context, query string) (string, error) {
	terms := queryTerms(query)
	if len(terms) == 0 {
		return "", nil
	}
	total, err := s.totalChunks(ctx)
	if err != nil {
		return "", err
	}
	limit := max(commonFloor, int(commonShare*float64(total)))
	var rare []string
	for _, t := range terms {
		n, err := s.store.CountMatches(ctx, `"`+t+`"`, limit)
		if err != nil {
			return "", err
		}
		if n < limit {
			rare = append(rare, `"`+t+`"`)
		}
	}
	if len(rare) > 0 {
		return strings.Join(rare, " OR "), nil
	}
	all := make([]string, len(terms))
	for i, t := range terms {
		all[i] = `"` + t + `"`
	}
	return strings.Join(all, " AND "), nil
}

// totalChunks counts every store's chunks, cached until chunks change.
func (s *Searcher) totalChunks(ctx context.Context) (int, error) {
	gen := s.store.ChunkGeneration()
	s.mu.Lock()
	if s.totalGen == gen && s.total >= 0 {
		n := s.total
		s.mu.Unlock()
		return n, nil
	}
	s.mu.Unlock()
	n, err := s.store.CountChunks(ctx, "")
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.total, s.totalGen = int(n), gen
	s.mu.Unlock()
	return int(n), nil
}

// maxTerms bounds the terms of one FTS query.
const maxTerms = 64

// MatchExpr turns free text into an FTS5 query: its distinct words, each
// quoted (so no word is read as FTS syntax), any of which may match; BM25
// ranks chunks matching more and rarer words first.
func MatchExpr(text string) string {
	terms := queryTerms(text)
	for i, t := range terms {
		terms[i] = `"` + t + `"`
	}
	return strings.Join(terms, " OR ")
}

// queryTerms are the distinct words of a query that a search looks for.
func queryTerms(text string) []string {
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	// Words that match nearly every chunk add little to the ranking and
	// much to the cost; they are dropped unless nothing else is left.
	content := slices.DeleteFunc(slices.Clone(words), func(w string) bool { return stopWords[w] })
	if len(content) > 0 {
		words = content
	}
	var terms []string
	seen := map[string]bool{}
	for _, w := range words {
		if seen[w] || len(terms) == maxTerms {
			continue
		}
		seen[w] = true
		terms = append(terms, w)
	}
	return terms
}

var stopWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a an and are as at be but by can do does for from had has have how i if in into
		is it its me my of on or our so than that the their them then there these they this to was we were what when
		where which who whom why will with would you your about tell find show give please`) {
		m[w] = true
	}
	return m
}()

// storeVectors is one store's chunk vectors, normalised to unit length,
// with each chunk's file as an index into files.
type storeVectors struct {
	gen    int64
	dim    int
	ids    []int64
	fileOf []int32
	files  []string
	// flat holds the vectors one after another (dim each), so a scan
	// reads memory in order.
	flat []float32
}

type neighbour struct {
	id    int64
	score float32
}

// nearest returns the k chunks of the stores most similar to v whose file
// keep accepts (files lists the same store files, for the database).
// With pgvector the database scans; otherwise the scan of each store's
// vectors in memory is split between the CPUs.
func (s *Searcher) nearest(ctx context.Context, storeIDs []string, v []float32, k int, files []db.StoreFile, keep func(store, file string) bool) ([]neighbour, error) {
	if s.store.VectorsInDatabase() {
		found, err := s.store.NearestChunks(ctx, files, v, k)
		if err != nil {
			return nil, err
		}
		out := make([]neighbour, len(found))
		for i, n := range found {
			out[i] = neighbour{n.ID, float32(n.Similarity)}
		}
		return out, nil
	}
	q := normalize(v)
	var all []neighbour
	for _, id := range storeIDs {
		sv, err := s.vectors(ctx, id)
		if err != nil {
			return nil, err
		}
		allowed := make([]bool, len(sv.files))
		for i, f := range sv.files {
			allowed[i] = keep(id, f)
		}
		if sv.dim != len(q) {
			continue // embedded with another model
		}
		parts := min(runtime.GOMAXPROCS(0), 8)
		if len(sv.ids) < 10000 {
			parts = 1
		}
		tops := make([][]neighbour, parts)
		var wg sync.WaitGroup
		for p := range parts {
			lo, hi := p*len(sv.ids)/parts, (p+1)*len(sv.ids)/parts
			wg.Go(func() { tops[p] = topK(sv, allowed, q, k, lo, hi) })
		}
		wg.Wait()
		for _, t := range tops {
			all = append(all, t...)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].score > all[j].score })
	if len(all) > k {
		all = all[:k]
	}
	return all, nil
}

// topK scans vectors lo..hi and keeps the k most similar to q, best first.
func topK(sv *storeVectors, allowed []bool, q []float32, k, lo, hi int) []neighbour {
	top := make([]neighbour, 0, k+1)
	for i := lo; i < hi; i++ {
		if !allowed[sv.fileOf[i]] {
			continue
		}
		dot := dotProduct(sv.flat[i*sv.dim:(i+1)*sv.dim], q)
		if len(top) == k && dot <= top[k-1].score {
			continue
		}
		at := sort.Search(len(top), func(i int) bool { return top[i].score < dot })
		top = append(top, neighbour{})
		copy(top[at+1:], top[at:len(top)-1])
		top[at] = neighbour{sv.ids[i], dot}
		if len(top) > k {
			top = top[:k]
		}
	}
	return top
}

// dotProduct of two vectors of the same length, four lanes at a time.
func dotProduct(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}

// vectors returns a store's vectors, loading them when chunks changed.
func (s *Searcher) vectors(ctx context.Context, storeID string) (*storeVectors, error) {
	gen := s.store.ChunkGeneration()
	s.mu.Lock()
	sv := s.vecs[storeID]
	s.mu.Unlock()
	if sv != nil && sv.gen == gen {
		return sv, nil
	}
	sv = &storeVectors{gen: gen}
	index := map[string]int32{}
	err := s.store.ChunkVectors(ctx, storeID, func(id int64, fileID string, vec []float32) {
		if sv.dim == 0 {
			sv.dim = len(vec)
		}
		if len(vec) != sv.dim || sv.dim == 0 {
			return // another model's vectors: the current model's are searched
		}
		fi, ok := index[fileID]
		if !ok {
			fi = int32(len(sv.files))
			index[fileID] = fi
			sv.files = append(sv.files, fileID)
		}
		sv.ids, sv.fileOf, sv.flat = append(sv.ids, id), append(sv.fileOf, fi), append(sv.flat, normalize(vec)...)
	})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.vecs[storeID] = sv
	s.mu.Unlock()
	return sv, nil
}

func normalize(v []float32) []float32 {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	out := make([]float32, len(v))
	if sum == 0 {
		return out
	}
	inv := float32(1 / math.Sqrt(sum))
	for i, x := range v {
		out[i] = x * inv
	}
	return out
}

// Service is retrieval as the API uses it: search, the ingestion
// queue's wake-up, and rewrite_query (a nil Rewriting searches queries as
// given).
type Service struct {
	*Searcher
	*Ingester
	*Rewriting
}
