package retrieval

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/assistantd/assistantd/db"
)

// openStore opens a fresh store in a temporary directory.
func openStore(t testing.TB) *db.Store {
	t.Helper()
	s, err := db.Open(testCtx(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// upload stores a file as /v1/files would.
func upload(t testing.TB, s *db.Store, name string, content []byte) db.File {
	t.Helper()
	sf, err := s.StageFile(bytes.NewReader(content), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.CommitFile(testCtx(), db.File{Filename: name, Purpose: "assistants"}, sf, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// ingestAll runs an ingester until the stores have nothing in progress.
func ingestAll(t testing.TB, s *db.Store, embed Embedder, storeIDs ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(testCtx(), 2*time.Minute)
	defer cancel()
	in := NewIngester(s, embed, 2, slog.New(slog.NewTextHandler(io.Discard, nil)))
	done := make(chan struct{})
	runCtx, stop := context.WithCancel(ctx)
	go func() { in.Run(runCtx); close(done) }()
	in.Wake()
	err := in.WaitIdle(ctx, storeIDs)
	stop()
	<-done
	if err != nil {
		t.Fatalf("wait for ingestion: %v", err)
	}
}

var fillerWords = strings.Fields(`system network process data value record service request response storage
	memory server client model report policy account budget meeting schedule project review design update version
	market customer product quality support training document section chapter summary history analysis method
	result table figure index search query answer question river mountain forest ocean weather season garden`)

// haystackDoc is a document of filler sentences with one needle fact in it.
func haystackDoc(r *rand.Rand, i int) (doc, needle, question string) {
	code := fmt.Sprintf("%c%c%d", 'A'+rune(i%26), 'A'+rune((i/26)%26), 1000+i)
	city := []string{"Lisbon", "Osaka", "Quito", "Tromso", "Windhoek", "Hobart", "Tbilisi", "Cusco"}[i%8]
	needle = fmt.Sprintf("The secret launch code for operation %s is stored in the vault in %s.", code, city)
	question = fmt.Sprintf("Where is the launch code of operation %s stored?", code)
	var b strings.Builder
	sentences := 120 + r.IntN(80)
	at := r.IntN(sentences)
	for s := range sentences {
		if s == at {
			b.WriteString(needle + " ")
			continue
		}
		n := 8 + r.IntN(10)
		for w := range n {
			word := fillerWords[r.IntN(len(fillerWords))]
			if w == 0 {
				word = strings.ToUpper(word[:1]) + word[1:]
			}
			b.WriteString(word)
			if w < n-1 {
				b.WriteByte(' ')
			}
		}
		b.WriteString(". ")
	}
	return b.String(), needle, question
}

// TestNeedleInHaystack is the retrieval evaluation: 250 generated
// documents, each hiding one fact; a question about each fact must find
// its document among the top 5 results with BM25 alone, for at least 95%
// of the needles.
func TestNeedleInHaystack(t *testing.T) {
	ctx := testCtx()
	s := openStore(t)
	r := rand.New(rand.NewPCG(1, 2))
	const docs = 250
	var files []db.NewVectorStoreFile
	questions := make([]string, docs)
	ids := make([]string, docs)
	for i := range docs {
		doc, _, q := haystackDoc(r, i)
		f := upload(t, s, fmt.Sprintf("doc-%03d.txt", i), []byte(doc))
		files = append(files, db.NewVectorStoreFile{FileID: f.ID, Chunking: db.AutoChunking()})
		questions[i], ids[i] = q, f.ID
	}
	vs, err := s.CreateVectorStore(ctx, db.VectorStore{Name: "haystack"}, files)
	if err != nil {
		t.Fatal(err)
	}
	ingestAll(t, s, nil, vs.ID)
	vs, _ = s.GetVectorStore(ctx, vs.ID)
	if vs.FileCounts.Completed != docs || vs.Status != "completed" {
		t.Fatalf("after ingestion: %+v status %s", vs.FileCounts, vs.Status)
	}
	searcher := NewSearcher(s, nil)
	found := 0
	for i, q := range questions {
		res, err := searcher.Search(ctx, Query{StoreIDs: []string{vs.ID}, Queries: []string{q}, MaxResults: 5})
		if err != nil {
			t.Fatal(err)
		}
		for _, hit := range res {
			if hit.FileID == ids[i] {
				found++
				break
			}
		}
		for _, hit := range res {
			if hit.Score < 0 || hit.Score > 1 {
				t.Fatalf("score %v outside 0..1", hit.Score)
			}
		}
	}
	rate := float64(found) / docs
	t.Logf("needles found in the top 5: %d/%d (%.1f%%)", found, docs, 100*rate)
	if rate < 0.95 {
		t.Fatalf("recall@5 = %.3f, want >= 0.95", rate)
	}
}

// minimalPDF builds a valid one-page PDF showing lines of text in
// Helvetica, with a correct cross-reference table.
func minimalPDF(lines ...string) []byte {
	var content strings.Builder
	content.WriteString("BT /F1 12 Tf 72 720 Td 14 TL\n")
	for _, l := range lines {
		fmt.Fprintf(&content, "(%s) Tj T*\n", strings.NewReplacer(`\`, `\\`, "(", `\(`, ")", `\)`).Replace(l))
	}
	content.WriteString("ET")
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", content.Len()+1, content.String()),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
	}
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return b.Bytes()
}

// minimalDOCX builds a DOCX (a zip with word/document.xml) with one
// paragraph per line.
func minimalDOCX(t testing.TB, paragraphs ...string) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	add := func(name, body string) {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, body)
	}
	add("[Content_Types].xml", `<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>`)
	add("_rels/.rels", `<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>`)
	var doc strings.Builder
	doc.WriteString(`<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>`)
	for _, p := range paragraphs {
		// Split each paragraph over two runs, as Word does.
		half := len(p) / 2
		fmt.Fprintf(&doc, `<w:p><w:r><w:t xml:space="preserve">%s</w:t></w:r><w:r><w:t>%s</w:t></w:r></w:p>`, p[:half], p[half:])
	}
	doc.WriteString(`</w:body></w:document>`)
	add("word/document.xml", doc.String())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestIngestFormats ingests a PDF, a DOCX, HTML, JSON, CSV and Go source,
// and checks each is searchable by a word only its text contains; broken
// and unsupported files fail with the right last_error code.
func TestIngestFormats(t *testing.T) {
	ctx := testCtx()
	s := openStore(t)
	cases := []struct {
		name    string
		content []byte
		word    string // searchable afterwards; "" when the file must fail
		code    string
	}{
		{"report.pdf", minimalPDF("Quarterly report", "The zeppelin fleet grew by twelve percent."), "zeppelin", ""},
		{"memo.docx", minimalDOCX(t, "Internal memo", "The marmalade budget is approved."), "marmalade", ""},
		{"page.html", []byte(`<html><head><style>.x{}</style><script>var hidden="scriptword"</script></head><body><p>The <b>quokka</b> exhibit opens.</p></body></html>`), "quokka", ""},
		{"data.json", []byte(`{"animal": "pangolin", "count": 3}`), "pangolin", ""},
		{"table.csv", []byte("name,colour\nkiwi,chartreuse\n"), "chartreuse", ""},
		{"main.go", []byte("package main\n\n// frobnicate does the thing.\nfunc frobnicate() {}\n"), "frobnicate", ""},
		{"broken.pdf", []byte("%PDF-1.4 this is not really a pdf"), "", CodeInvalid},
		{"broken.docx", []byte("not a zip"), "", CodeInvalid},
		{"image.png", []byte("\x89PNG\r\n\x1a\n"), "", CodeUnsupported},
		{"bad.json", []byte(`{"unterminated": `), "", CodeInvalid},
	}
	var files []db.NewVectorStoreFile
	for i := range cases {
		f := upload(t, s, cases[i].name, cases[i].content)
		files = append(files, db.NewVectorStoreFile{FileID: f.ID, Chunking: db.AutoChunking()})
		cases[i].name = f.ID + " " + cases[i].name
	}
	vs, err := s.CreateVectorStore(ctx, db.VectorStore{}, files)
	if err != nil {
		t.Fatal(err)
	}
	ingestAll(t, s, nil, vs.ID)
	searcher := NewSearcher(s, nil)
	for i, tc := range cases {
		fileID := files[i].FileID
		vf, err := s.GetVectorStoreFile(ctx, vs.ID, fileID)
		if err != nil {
			t.Fatal(err)
		}
		if tc.word == "" {
			if vf.Status != "failed" || vf.LastError == nil || vf.LastError.Code != tc.code {
				t.Errorf("%s: status %s, last_error %+v; want failed with %s", tc.name, vf.Status, vf.LastError, tc.code)
			}
			continue
		}
		if vf.Status != "completed" || vf.UsageBytes == 0 {
			t.Errorf("%s: status %s (%+v), usage %d", tc.name, vf.Status, vf.LastError, vf.UsageBytes)
			continue
		}
		res, err := searcher.Search(ctx, Query{StoreIDs: []string{vs.ID}, Queries: []string{tc.word}})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 1 || res[0].FileID != fileID || !strings.Contains(strings.ToLower(res[0].Text), tc.word) {
			t.Errorf("%s: search %q = %+v", tc.name, tc.word, res)
		}
	}
	if res, _ := searcher.Search(ctx, Query{StoreIDs: []string{vs.ID}, Queries: []string{"scriptword"}}); len(res) != 0 {
		t.Errorf("script text was indexed: %+v", res)
	}
	vs, _ = s.GetVectorStore(ctx, vs.ID)
	if want := (db.FileCounts{Completed: 6, Failed: 4, Total: 10}); vs.FileCounts != want {
		t.Errorf("file_counts = %+v, want %+v", vs.FileCounts, want)
	}
}

// TestDeleteFileRemovesChunksEverywhere: a file in two stores leaves both,
// with its chunks, when it is deleted; a store's own removal keeps it in
// the other.
func TestDeleteFileRemovesChunksEverywhere(t *testing.T) {
	ctx := testCtx()
	s := openStore(t)
	f := upload(t, s, "a.txt", []byte("The axolotl regrows its limbs."))
	g := upload(t, s, "b.txt", []byte("The axolotl lives in Mexico."))
	add := []db.NewVectorStoreFile{{FileID: f.ID, Chunking: db.AutoChunking()}, {FileID: g.ID, Chunking: db.AutoChunking()}}
	v1, _ := s.CreateVectorStore(ctx, db.VectorStore{}, add)
	v2, _ := s.CreateVectorStore(ctx, db.VectorStore{}, add[:1])
	ingestAll(t, s, nil, v1.ID, v2.ID)
	if n, _ := s.CountChunks(ctx, f.ID); n != 2 {
		t.Fatalf("chunks of f = %d, want 2 (one per store)", n)
	}
	if err := s.DeleteVectorStoreFile(ctx, v2.ID, f.ID); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.CountChunks(ctx, f.ID); n != 1 {
		t.Fatalf("after removing from v2: %d chunks, want 1", n)
	}
	if err := s.DeleteFile(ctx, f.ID); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.CountChunks(ctx, f.ID); n != 0 {
		t.Fatalf("after deleting the file: %d chunks", n)
	}
	res, err := NewSearcher(s, nil).Search(ctx, Query{StoreIDs: []string{v1.ID, v2.ID}, Queries: []string{"axolotl"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].FileID != g.ID {
		t.Fatalf("search after delete = %+v", res)
	}
	v1, _ = s.GetVectorStore(ctx, v1.ID)
	if v1.FileCounts.Total != 1 || v1.FileCounts.Completed != 1 {
		t.Fatalf("v1 counts after delete = %+v", v1.FileCounts)
	}
	if _, err := s.GetVectorStoreFile(ctx, v1.ID, f.ID); err != db.ErrNotFound {
		t.Fatalf("vector store file after delete: %v", err)
	}
}

// TestFilters checks comparison and compound filters on attributes.
func TestFilters(t *testing.T) {
	attrs := db.Attributes{"author": "ann", "year": 2021.0, "draft": false}
	for _, tc := range []struct {
		f    Filter
		want bool
	}{
		{Filter{Type: "eq", Key: "author", Value: "ann"}, true},
		{Filter{Type: "ne", Key: "author", Value: "ann"}, false},
		{Filter{Type: "gt", Key: "year", Value: 2020.0}, true},
		{Filter{Type: "lte", Key: "year", Value: 2020.0}, false},
		{Filter{Type: "eq", Key: "draft", Value: false}, true},
		{Filter{Type: "in", Key: "author", Value: []any{"bob", "ann"}}, true},
		{Filter{Type: "nin", Key: "author", Value: []any{"bob"}}, true},
		{Filter{Type: "eq", Key: "missing", Value: "x"}, false},
		{Filter{Type: "gt", Key: "author", Value: 3.0}, false},
		{Filter{Type: "and", Filters: []Filter{{Type: "eq", Key: "author", Value: "ann"}, {Type: "lt", Key: "year", Value: 2000.0}}}, false},
		{Filter{Type: "or", Filters: []Filter{{Type: "eq", Key: "author", Value: "bob"}, {Type: "gte", Key: "year", Value: 2021.0}}}, true},
	} {
		if err := tc.f.Check(); err != nil {
			t.Errorf("%+v: %v", tc.f, err)
		}
		if got := tc.f.Match(attrs); got != tc.want {
			t.Errorf("%+v.Match = %v, want %v", tc.f, got, tc.want)
		}
	}
	for _, bad := range []Filter{{Type: "xx"}, {Type: "eq", Value: "x"}, {Type: "in", Key: "k", Value: "x"}, {Type: "and"}} {
		if bad.Check() == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

// conceptEmbedder embeds words by concept, so synonyms share a vector:
// what an embeddings model adds over BM25. Ingestion workers call it
// concurrently.
type conceptEmbedder struct{ calls atomic.Int64 }

var concepts = map[string]int{"car": 0, "automobile": 0, "vehicle": 0, "dog": 1, "puppy": 1, "canine": 1, "rain": 2, "storm": 2}

func (e *conceptEmbedder) Embed(_ context.Context, texts []string) ([][]float32, error) {
	e.calls.Add(1)
	out := make([][]float32, len(texts))
	for i, t := range texts {
		v := make([]float32, 4)
		v[3] = 0.01
		for _, w := range strings.Fields(strings.ToLower(t)) {
			if d, ok := concepts[strings.Trim(w, ".,?")]; ok {
				v[d]++
			}
		}
		out[i] = v
	}
	return out, nil
}

// TestHybridSearch: with an embedder, ingestion stores vectors and search
// fuses BM25 with vector similarity, so a synonym finds a file BM25 alone
// misses; scores stay in 0..1, and the best fused result scores 1 when
// both rankings agree.
func TestHybridSearch(t *testing.T) {
	ctx := testCtx()
	s := openStore(t)
	car := upload(t, s, "car.txt", []byte("My car needs new tyres before winter."))
	dog := upload(t, s, "dog.txt", []byte("The puppy sleeps all afternoon."))
	wet := upload(t, s, "wet.txt", []byte("A storm is expected tonight."))
	vs, _ := s.CreateVectorStore(ctx, db.VectorStore{}, []db.NewVectorStoreFile{
		{FileID: car.ID, Chunking: db.AutoChunking()}, {FileID: dog.ID, Chunking: db.AutoChunking()}, {FileID: wet.ID, Chunking: db.AutoChunking()}})
	emb := &conceptEmbedder{}
	ingestAll(t, s, emb, vs.ID)
	if emb.calls.Load() == 0 {
		t.Fatal("ingestion did not embed")
	}
	q := Query{StoreIDs: []string{vs.ID}, Queries: []string{"automobile"}, MaxResults: 1}
	if res, _ := NewSearcher(s, nil).Search(ctx, q); len(res) != 0 {
		t.Fatalf("BM25 alone found %+v for a word no file contains", res)
	}
	hs := NewSearcher(s, emb)
	res, err := hs.Search(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].FileID != car.ID {
		t.Fatalf("hybrid search for a synonym: %+v", res)
	}
	res, _ = NewSearcher(s, emb).Search(ctx, Query{StoreIDs: []string{vs.ID}, Queries: []string{"puppy"}})
	if len(res) == 0 || res[0].FileID != dog.ID || res[0].Score != 1 {
		t.Fatalf("hybrid search, both rankings agree: %+v", res)
	}
	for _, r := range res {
		if r.Score < 0 || r.Score > 1 {
			t.Errorf("score %v outside 0..1", r.Score)
		}
	}
	// Deleting a file drops it from the in-memory vectors too.
	if err := s.DeleteFile(ctx, car.ID); err != nil {
		t.Fatal(err)
	}
	if res, _ := hs.Search(ctx, q); len(res) != 0 && res[0].FileID == car.ID {
		t.Fatalf("deleted file still found: %+v", res)
	}
}

// testCtx is the context of a test's own calls: scoped to the Default
// project, as a request with a Default-project key is.
func testCtx() context.Context { return db.WithProject(context.Background(), db.DefaultProjectID) }
