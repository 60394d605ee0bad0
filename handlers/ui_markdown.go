package handlers

import (
	"bytes"
	"regexp"
	"strings"
	"sync"

	chromahtml "github.com/alecthomas/chroma/v2/formatters/html"
	"github.com/alecthomas/chroma/v2/styles"
	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"
	highlighting "github.com/yuin/goldmark-highlighting/v2"
	"github.com/yuin/goldmark/extension"
)

// markdown renders message text. Raw HTML in the source is never passed
// through (goldmark omits it without WithUnsafe), and the output goes
// through an allow-list sanitiser as well, so nothing a model or a user
// wrote can add script, event handlers or javascript: URLs to the page.
// Code blocks are highlighted with CSS classes (the stylesheet is
// ChromaCSS), which keeps the CSP free of inline styles.
var markdown = goldmark.New(
	goldmark.WithExtensions(
		extension.GFM,
		highlighting.NewHighlighting(
			highlighting.WithFormatOptions(chromahtml.WithClasses(true)),
			highlighting.WithGuessLanguage(false),
		),
	),
)

var sanitizer = func() *bluemonday.Policy {
	p := bluemonday.UGCPolicy()
	p.AllowAttrs("class").Matching(regexp.MustCompile(`^[a-zA-Z0-9 _-]+$`)).OnElements("span", "code", "pre", "div")
	p.AddTargetBlankToFullyQualifiedLinks(true)
	p.RequireNoReferrerOnFullyQualifiedLinks(true)
	return p
}()

// renderMarkdown turns message text into sanitised HTML.
func renderMarkdown(src string) string {
	var buf bytes.Buffer
	if err := markdown.Convert([]byte(src), &buf); err != nil {
		// Fall back to the escaped text: never the raw source.
		return "<pre>" + bluemonday.StrictPolicy().Sanitize(src) + "</pre>"
	}
	return sanitizer.Sanitize(buf.String())
}

// chromaCSS is the stylesheet for highlighted code: a light style, and a
// dark one under prefers-color-scheme.
var chromaCSS = sync.OnceValue(func() []byte {
	f := chromahtml.New(chromahtml.WithClasses(true))
	var buf bytes.Buffer
	_ = f.WriteCSS(&buf, styles.Get("github"))
	var dark bytes.Buffer
	_ = f.WriteCSS(&dark, styles.Get("github-dark"))
	buf.WriteString("@media (prefers-color-scheme: dark) {\n")
	buf.WriteString(strings.ReplaceAll(dark.String(), "\n", "\n  "))
	buf.WriteString("\n}\n")
	return buf.Bytes()
})
