// Package retrieval is file_search's engine: it turns stored files into
// chunks (text extraction, token chunking, optional embeddings) in the
// background, durably, and searches a run's or a client's vector stores
// with BM25 through SQLite FTS5, merged with vector similarity by
// reciprocal-rank fusion when an embeddings model is configured.
//
// Every file is hostile until extracted: each runs under a deadline and
// bounds on the text it may yield, text formats are read through limits
// rather than whole, and PDFs, whose parsers can loop or balloon on a
// crafted page tree, are read by poppler's pdftotext in a child process
// under rlimits.
package retrieval

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"golang.org/x/net/html"
)

// Failure codes a vector store file's last_error carries.
const (
	CodeUnsupported = "unsupported_file"
	CodeInvalid     = "invalid_file"
	CodeServer      = "server_error"
)

// FileError is an extraction failure with the code the API shows.
type FileError struct {
	Code string
	Msg  string
}

func (e *FileError) Error() string { return e.Msg }

// Limits bound the ingestion of one file. Zero fields take
// DefaultLimits' values.
type Limits struct {
	// Timeout bounds the whole file: extraction, chunking and embedding.
	Timeout time.Duration
	// MaxText bounds the bytes of text extracted from a file; the
	// extracted text, its chunks and their storage are what one file
	// holds in memory, a few times this.
	MaxText int64
	// MaxTokens bounds the tokens of a file's text (OpenAI's limit is
	// 5,000,000 per file).
	MaxTokens int
	// PDFMemory is the address-space limit (RLIMIT_AS) of pdftotext.
	PDFMemory int64
	// PDFToText is pdftotext's path; "" looks it up on PATH.
	PDFToText string
}

// DefaultLimits are the limits ingestion runs under unless configured.
func DefaultLimits() Limits {
	return Limits{Timeout: 2 * time.Minute, MaxText: 32 << 20, MaxTokens: 5_000_000, PDFMemory: 1 << 30}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.Timeout <= 0 {
		l.Timeout = d.Timeout
	}
	if l.MaxText <= 0 {
		l.MaxText = d.MaxText
	}
	if l.MaxTokens <= 0 {
		l.MaxTokens = d.MaxTokens
	}
	if l.PDFMemory <= 0 {
		l.PDFMemory = d.PDFMemory
	}
	return l
}

func (l Limits) tooMuchText() error {
	return &FileError{CodeInvalid, fmt.Sprintf("The file has more than %s of text, the most a file can hold for search.", mib(l.MaxText))}
}

func mib(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// textExts are extensions read as plain text (markup, data and source
// code alike).
var textExts = map[string]bool{
	".txt": true, ".md": true, ".markdown": true, ".json": true, ".jsonl": true, ".csv": true, ".tsv": true,
	".xml": true, ".yaml": true, ".yml": true, ".toml": true, ".ini": true, ".log": true, ".rst": true, ".tex": true,
	".go": true, ".py": true, ".js": true, ".mjs": true, ".ts": true, ".tsx": true, ".jsx": true, ".java": true,
	".c": true, ".h": true, ".cc": true, ".cpp": true, ".hpp": true, ".cs": true, ".rb": true, ".php": true,
	".rs": true, ".swift": true, ".kt": true, ".scala": true, ".sh": true, ".bash": true, ".sql": true, ".css": true,
	".r": true, ".lua": true, ".pl": true, ".dart": true, ".vue": true, ".svelte": true,
}

// Extract returns the text of a file's content (size bytes read through
// content), chosen by its name's extension (and, for names without one,
// by content sniffing), within lim. It stops when ctx ends.
func Extract(ctx context.Context, filename string, content io.ReaderAt, size int64, lim Limits) (string, error) {
	lim = lim.withDefaults()
	ext := strings.ToLower(path.Ext(filename))
	var head [5]byte
	n, _ := content.ReadAt(head[:], 0)
	switch {
	case ext == ".pdf" || (ext == "" && bytes.HasPrefix(head[:n], []byte("%PDF-"))):
		return extractPDF(ctx, content, size, lim)
	case ext == ".docx":
		return extractDOCX(ctx, content, size, lim)
	case ext == ".html" || ext == ".htm":
		return extractHTML(ctx, io.NewSectionReader(content, 0, size), lim)
	case textExts[ext] || ext == "":
		return extractText(filename, ext, io.NewSectionReader(content, 0, size), lim)
	default:
		return "", &FileError{CodeUnsupported, fmt.Sprintf("Files with extension [%s] are not supported for retrieval.", ext)}
	}
}

// extractText reads a text file, at most lim.MaxText bytes of it.
func extractText(filename, ext string, r io.Reader, lim Limits) (string, error) {
	content, err := io.ReadAll(io.LimitReader(r, lim.MaxText+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", filename, err)
	}
	if int64(len(content)) > lim.MaxText {
		return "", lim.tooMuchText()
	}
	if !utf8.Valid(content) || bytes.IndexByte(content, 0) >= 0 {
		if ext == "" {
			return "", &FileError{CodeUnsupported, fmt.Sprintf("File %s is not a supported type.", filename)}
		}
		return "", &FileError{CodeInvalid, fmt.Sprintf("File %s is not valid UTF-8 text.", filename)}
	}
	if ext == ".json" && !json.Valid(content) {
		return "", &FileError{CodeInvalid, fmt.Sprintf("File %s is not valid JSON.", filename)}
	}
	return string(content), nil
}

// pdfTextTool is poppler-utils' PDF-to-text converter.
const pdfTextTool = "pdftotext"

// extractPDF runs pdftotext in a child process: no Go PDF library
// survives a crafted page tree (a Pages node that is its own kid, a page
// that is its own parent, a /Count of two billion send them into endless
// loops or allocations), and poppler is the field's standard reader. The
// child runs under prlimit's address-space and CPU limits and ctx's
// deadline, and its output is read up to lim.MaxText.
func extractPDF(ctx context.Context, content io.ReaderAt, size int64, lim Limits) (string, error) {
	tool := lim.PDFToText
	if tool == "" {
		tool = pdfTextTool
	}
	bin, err := exec.LookPath(tool)
	if err != nil {
		return "", &FileError{CodeUnsupported, "PDF files cannot be read: this server lacks pdftotext (Debian package poppler-utils)."}
	}
	args := []string{"-enc", "UTF-8", "-eol", "unix"}
	cmd := exec.CommandContext(ctx, bin)
	// A stored file is handed over as the child's stdin and opened again
	// through /dev/stdin, so poppler can seek without copying it; any
	// other reader is piped.
	if f, ok := content.(*os.File); ok {
		cmd.Stdin = f
		args = append(args, "/dev/stdin", "-")
	} else {
		cmd.Stdin = io.NewSectionReader(content, 0, size)
		args = append(args, "-", "-")
	}
	cmd.Args = append([]string{bin}, args...)
	if prlimit, err := exec.LookPath("prlimit"); err == nil {
		cpu := max(1, int64(lim.Timeout/time.Second))
		cmd.Path = prlimit
		cmd.Args = append([]string{prlimit, "--as=" + strconv.FormatInt(lim.PDFMemory, 10),
			"--cpu=" + strconv.FormatInt(cpu, 10), "--core=0", "--fsize=0", "--"}, cmd.Args...)
	}
	cmd.Env = []string{"LC_ALL=C.UTF-8"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4096}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", fmt.Errorf("pdftotext: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start pdftotext: %w", err)
	}
	text, readErr := io.ReadAll(io.LimitReader(out, lim.MaxText+1))
	tooLong := int64(len(text)) > lim.MaxText
	if tooLong {
		cmd.Cancel()
	}
	err = cmd.Wait()
	switch {
	case tooLong:
		return "", lim.tooMuchText()
	case ctx.Err() != nil:
		return "", ctx.Err()
	case readErr != nil:
		return "", fmt.Errorf("read pdftotext's output: %w", readErr)
	case err != nil:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return "", &FileError{CodeInvalid, fmt.Sprintf("The PDF could not be read within its limits (%s of memory, %s of CPU); pdftotext was stopped by %v.",
					mib(lim.PDFMemory), lim.Timeout, ws.Signal())}
			}
			// Its first complaint names the cause ("Syntax Error: Page
			// count (5) larger than number of objects (3)").
			msg := strings.TrimSpace(strings.ToValidUTF8(stderr.String(), ""))
			if i := strings.IndexByte(msg, '\n'); i >= 0 {
				msg = msg[:i]
			}
			if msg == "" {
				msg = "pdftotext exited with status " + strconv.Itoa(ee.ExitCode())
			}
			return "", &FileError{CodeInvalid, "The PDF could not be read: " + msg}
		}
		return "", fmt.Errorf("pdftotext: %w", err)
	}
	s := strings.ReplaceAll(strings.ToValidUTF8(string(text), "\uFFFD"), "\f", "\n\n")
	if strings.TrimSpace(s) == "" {
		return "", &FileError{CodeInvalid, "The PDF has no extractable text."}
	}
	return s, nil
}

// limitedWriter keeps the first n bytes written to it and drops the rest.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(l.n, len(p))
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

// overflowReader reads at most n bytes and records whether more were
// there, so a bound reached reads as "too large", not as a truncated
// (and so malformed) document.
type overflowReader struct {
	r    io.Reader
	n    int64
	over bool
}

func (o *overflowReader) Read(p []byte) (int, error) {
	if o.n <= 0 {
		var one [1]byte
		if k, _ := o.r.Read(one[:]); k > 0 {
			o.over = true
		}
		return 0, io.EOF
	}
	if int64(len(p)) > o.n {
		p = p[:o.n]
	}
	k, err := o.r.Read(p)
	o.n -= int64(k)
	return k, err
}

// checkEvery is how many tokens a parsing loop handles between looks at
// its deadline.
const checkEvery = 4096

// extractDOCX reads word/document.xml from the zip: the text of w:t runs,
// a tab for w:tab, a line break for w:br and a blank line per paragraph.
// The zip is read in place, the XML streamed: a zip bomb inflates at most
// twice lim.MaxText bytes of XML before it fails as too large.
func extractDOCX(ctx context.Context, content io.ReaderAt, size int64, lim Limits) (string, error) {
	zr, err := zip.NewReader(content, size)
	if err != nil {
		return "", &FileError{CodeInvalid, "The DOCX file is not a valid zip archive."}
	}
	var doc *zip.File
	for _, f := range zr.File {
		if f.Name == "word/document.xml" {
			doc = f
		}
	}
	if doc == nil {
		return "", &FileError{CodeInvalid, "The DOCX file has no word/document.xml."}
	}
	rc, err := doc.Open()
	if err != nil {
		return "", &FileError{CodeInvalid, "The DOCX file could not be opened: " + err.Error()}
	}
	defer rc.Close()
	src := &overflowReader{r: rc, n: 2 * lim.MaxText}
	dec := xml.NewDecoder(src)
	var b strings.Builder
	inText := false
	for n := 0; ; n++ {
		if n%checkEvery == 0 && ctx.Err() != nil {
			return "", ctx.Err()
		}
		tok, err := dec.RawToken()
		if src.over {
			return "", lim.tooMuchText()
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", &FileError{CodeInvalid, "The DOCX document is not valid XML: " + err.Error()}
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "t":
				inText = true
			case "tab":
				b.WriteByte('\t')
			case "br", "cr":
				b.WriteByte('\n')
			}
		case xml.EndElement:
			switch t.Name.Local {
			case "t":
				inText = false
			case "p":
				b.WriteString("\n\n")
			}
		case xml.CharData:
			if inText {
				b.Write(t)
			}
		}
		if int64(b.Len()) > lim.MaxText {
			return "", lim.tooMuchText()
		}
	}
	return b.String(), nil
}

// extractHTML keeps the text of an HTML document, without scripts and
// styles, with block elements on their own lines. It tokenizes as it
// reads (no tree), each token bounded by lim.MaxText.
func extractHTML(ctx context.Context, r io.Reader, lim Limits) (string, error) {
	src := &overflowReader{r: r, n: 4 * lim.MaxText}
	z := html.NewTokenizer(src)
	z.SetMaxBuf(int(lim.MaxText))
	var b strings.Builder
	skip := 0 // depth inside script, style, noscript and template
	for n := 0; ; n++ {
		if n%checkEvery == 0 && ctx.Err() != nil {
			return "", ctx.Err()
		}
		tt := z.Next()
		if src.over {
			return "", lim.tooMuchText()
		}
		switch tt {
		case html.ErrorToken:
			if errors.Is(z.Err(), io.EOF) {
				return b.String(), nil
			}
			if errors.Is(z.Err(), html.ErrBufferExceeded) {
				return "", lim.tooMuchText()
			}
			return "", &FileError{CodeInvalid, "The HTML could not be parsed: " + z.Err().Error()}
		case html.TextToken:
			if skip == 0 {
				b.Write(z.Text())
			}
		case html.StartTagToken, html.EndTagToken, html.SelfClosingTagToken:
			name, _ := z.TagName()
			switch string(name) {
			case "script", "style", "noscript", "template":
				if tt == html.StartTagToken {
					skip++
				} else if tt == html.EndTagToken && skip > 0 {
					skip--
				}
			case "br":
				b.WriteByte('\n')
			case "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "section", "article", "title":
				if tt == html.EndTagToken {
					b.WriteByte('\n')
				}
			}
		}
		if int64(b.Len()) > lim.MaxText {
			return "", lim.tooMuchText()
		}
	}
}
