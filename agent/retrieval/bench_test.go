package retrieval

import (
	"context"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/assistantd/assistantd/db"
)

// Benchmarks (not run by go test without -bench):
//
//	go test ./agent/retrieval/ -run '^$' -bench . -benchtime 1x
//
// BenchmarkIngest reports MB/s of text through extraction, chunking (auto:
// 800/400 tokens) and storage; BenchmarkSearch reports p50/p99 latency
// of BM25 and hybrid search over 100,000 chunks.

// vocabulary is a word list with a long tail, so BM25 sees realistic
// document frequencies.
func vocabulary(n int) []string {
	r := rand.New(rand.NewPCG(7, 7))
	words := make([]string, n)
	for i := range words {
		var b strings.Builder
		for range 3 + r.IntN(7) {
			b.WriteByte(byte('a' + r.IntN(26)))
		}
		words[i] = b.String()
	}
	return words
}

// zipfText writes about size bytes of sentences drawn Zipf-like from vocab.
func zipfText(r *rand.Rand, vocab []string, size int) string {
	z := rand.NewZipf(r, 1.1, 2, uint64(len(vocab)-1))
	var b strings.Builder
	for b.Len() < size {
		n := 6 + r.IntN(12)
		for i := range n {
			b.WriteString(vocab[z.Uint64()])
			if i < n-1 {
				b.WriteByte(' ')
			}
		}
		b.WriteString(". ")
	}
	return b.String()
}

// goSources returns about n bytes of real text: the Go distribution's own
// source files (code and comments), in a fixed order.
func goSources(b *testing.B, n int) []byte {
	var out []byte
	root := filepath.Join(runtime.GOROOT(), "src")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || len(out) >= n {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.Contains(path, "testdata") {
			body, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			out = append(out, body...)
		}
		return nil
	})
	if err != nil || len(out) < n {
		b.Skipf("not enough Go sources under %s: %v", root, err)
	}
	return out[:n]
}

func BenchmarkIngest(b *testing.B) {
	ctx := testCtx()
	s := openStore(b)
	const files, size = 20, 512 << 10
	text := goSources(b, files*size)
	var add []db.NewVectorStoreFile
	for i := range files {
		f := upload(b, s, fmt.Sprintf("f%d.go", i), []byte(strings.ToValidUTF8(string(text[i*size:(i+1)*size]), " ")))
		add = append(add, db.NewVectorStoreFile{FileID: f.ID, Chunking: db.AutoChunking()})
	}
	b.ResetTimer()
	var total, cpu time.Duration
	for range b.N {
		cpu0 := cpuTime()
		vs, err := s.CreateVectorStore(ctx, db.VectorStore{}, add)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		ingestAll(b, s, nil, vs.ID)
		total += time.Since(start)
		cpu += cpuTime() - cpu0
		got, _ := s.GetVectorStore(ctx, vs.ID)
		if got.FileCounts.Completed != files {
			b.Fatalf("counts %+v", got.FileCounts)
		}
	}
	b.ReportMetric(float64(files*size*b.N)/1e6/total.Seconds(), "MB/s")
	// Throughput per second of CPU: what one idle core does, however
	// loaded the machine running the benchmark is.
	b.ReportMetric(float64(files*size*b.N)/1e6/cpu.Seconds(), "MB/cpu-s")
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// hashEmbedder is a local stand-in for an embeddings model: a hashed bag
// of words in 256 dimensions. It makes hybrid search measurable without a
// network (the query's embedding request is then not part of the latency).
type hashEmbedder struct{}

const hashDims = 256

func (hashEmbedder) Embed(_ context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		v := make([]float32, hashDims)
		for _, w := range strings.Fields(strings.ToLower(t)) {
			h := fnv.New32a()
			h.Write([]byte(strings.Trim(w, ".,")))
			v[h.Sum32()%hashDims]++
		}
		out[i] = v
	}
	return out, nil
}

// searchCorpus stores 100,000 chunks of about 60 words in one vector
// store (1,000 files of 100 chunks), with hash embeddings.
func searchCorpus(b *testing.B) (*db.Store, string, []string) {
	ctx := testCtx()
	s := openStore(b)
	r := rand.New(rand.NewPCG(3, 3))
	vocab := vocabulary(50000)
	var add []db.NewVectorStoreFile
	const files, perFile = 1000, 100
	for i := range files {
		f := upload(b, s, fmt.Sprintf("f%d.txt", i), []byte("x"))
		add = append(add, db.NewVectorStoreFile{FileID: f.ID, Chunking: db.AutoChunking()})
	}
	vs, err := s.CreateVectorStore(ctx, db.VectorStore{}, add)
	if err != nil {
		b.Fatal(err)
	}
	emb := hashEmbedder{}
	var queries []string
	for i, f := range add {
		chunks := make([]db.NewChunk, perFile)
		texts := make([]string, perFile)
		for j := range chunks {
			texts[j] = zipfText(r, vocab, 350)
			chunks[j].Text = texts[j]
		}
		vecs, _ := emb.Embed(ctx, texts)
		for j := range chunks {
			chunks[j].Embedding = vecs[j]
		}
		if _, err := s.CompleteVectorStoreFile(ctx, vs.ID, f.FileID, chunks); err != nil {
			b.Fatal(err)
		}
		if i%10 == 0 {
			// A query of four words from one chunk.
			w := strings.Fields(texts[r.IntN(perFile)])
			queries = append(queries, strings.Join(w[:4], " "))
		}
	}
	return s, vs.ID, queries
}

func BenchmarkSearch(b *testing.B) {
	s, vsID, queries := searchCorpus(b)
	for _, mode := range []struct {
		name  string
		embed Embedder
	}{{"bm25", nil}, {"hybrid", hashEmbedder{}}} {
		b.Run(mode.name, func(b *testing.B) {
			searcher := NewSearcher(s, mode.embed)
			ctx := testCtx()
			// Warm-up (loads the vectors into memory for hybrid).
			if _, err := searcher.Search(ctx, Query{StoreIDs: []string{vsID}, Queries: queries[:1]}); err != nil {
				b.Fatal(err)
			}
			var lat []time.Duration
			cpu0 := cpuTime()
			b.ResetTimer()
			for i := range b.N {
				for _, q := range queries {
					start := time.Now()
					res, err := searcher.Search(ctx, Query{StoreIDs: []string{vsID}, Queries: []string{q}, MaxResults: 10})
					lat = append(lat, time.Since(start))
					if err != nil || len(res) == 0 {
						b.Fatalf("query %d %q: %v, %d results", i, q, err, len(res))
					}
				}
			}
			cpu := cpuTime() - cpu0
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(len(lat)), "cpu-ms/query")
			slices.Sort(lat)
			ms := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(ms(0.5), "p50-ms")
			b.ReportMetric(ms(0.99), "p99-ms")
		})
	}
}
