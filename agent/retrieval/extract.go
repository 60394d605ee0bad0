// Package retrieval is file_search's engine: it turns stored files into
// chunks (text extraction, token chunking, optional embeddings) in the
// background, durably, and searches a run's or a client's vector stores
// with BM25 through SQLite FTS5, merged with vector similarity by
// reciprocal-rank fusion when an embeddings model is configured.
package retrieval

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/ledongthuc/pdf"
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

// Extract returns the text of a file's content, chosen by its name's
// extension (and, for names without one, by content sniffing).
func Extract(filename string, content []byte) (string, error) {
	ext := strings.ToLower(path.Ext(filename))
	switch {
	case ext == ".pdf" || (ext == "" && bytes.HasPrefix(content, []byte("%PDF-"))):
		return extractPDF(content)
	case ext == ".docx":
		return extractDOCX(content)
	case ext == ".html" || ext == ".htm":
		return extractHTML(content)
	case ext == ".json" && !json.Valid(content):
		return "", &FileError{CodeInvalid, fmt.Sprintf("File %s is not valid JSON.", filename)}
	case textExts[ext] || ext == "":
		if !utf8.Valid(content) || bytes.IndexByte(content, 0) >= 0 {
			if ext == "" {
				return "", &FileError{CodeUnsupported, fmt.Sprintf("File %s is not a supported type.", filename)}
			}
			return "", &FileError{CodeInvalid, fmt.Sprintf("File %s is not valid UTF-8 text.", filename)}
		}
		return string(content), nil
	default:
		return "", &FileError{CodeUnsupported, fmt.Sprintf("Files with extension [%s] are not supported for retrieval.", ext)}
	}
}

func extractPDF(content []byte) (text string, err error) {
	// The PDF library panics on some malformed input; a bad upload must
	// fail its file, not the server.
	defer func() {
		if r := recover(); r != nil {
			text, err = "", &FileError{CodeInvalid, fmt.Sprintf("The PDF could not be read: %v", r)}
		}
	}()
	r, err := pdf.NewReader(bytes.NewReader(content), int64(len(content)))
	if err != nil {
		return "", &FileError{CodeInvalid, "The PDF could not be read: " + err.Error()}
	}
	var b strings.Builder
	fonts := map[string]*pdf.Font{}
	for i := 1; i <= r.NumPage(); i++ {
		p := r.Page(i)
		if p.V.IsNull() {
			continue
		}
		for _, name := range p.Fonts() {
			if _, ok := fonts[name]; !ok {
				f := p.Font(name)
				fonts[name] = &f
			}
		}
		t, err := p.GetPlainText(fonts)
		if err != nil {
			return "", &FileError{CodeInvalid, fmt.Sprintf("The PDF's page %d could not be read: %v", i, err)}
		}
		b.WriteString(t)
		b.WriteString("\n\n")
	}
	if strings.TrimSpace(b.String()) == "" {
		return "", &FileError{CodeInvalid, "The PDF has no extractable text."}
	}
	return b.String(), nil
}

// extractDOCX reads word/document.xml from the zip: the text of w:t runs,
// a tab for w:tab, a line break for w:br and a blank line per paragraph.
func extractDOCX(content []byte) (string, error) {
	zr, err := zip.NewReader(bytes.NewReader(content), int64(len(content)))
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
	dec := xml.NewDecoder(io.LimitReader(rc, 256<<20))
	var b strings.Builder
	inText := false
	for {
		tok, err := dec.Token()
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
	}
	return b.String(), nil
}

// extractHTML keeps the text of an HTML document, without scripts and
// styles, with block elements on their own lines.
func extractHTML(content []byte) (string, error) {
	node, err := html.Parse(bytes.NewReader(content))
	if err != nil {
		return "", &FileError{CodeInvalid, "The HTML could not be parsed: " + err.Error()}
	}
	var b strings.Builder
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		switch n.Type {
		case html.TextNode:
			b.WriteString(n.Data)
			return
		case html.ElementNode:
			switch n.Data {
			case "script", "style", "noscript", "template", "head":
				if n.Data != "head" {
					return
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
		if n.Type == html.ElementNode {
			switch n.Data {
			case "p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "section", "article", "title":
				b.WriteByte('\n')
			}
		}
	}
	walk(node)
	return b.String(), nil
}
