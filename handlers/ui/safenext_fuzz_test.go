package ui

import (
	"net/url"
	"strings"
	"testing"
	"unicode"
)

// browserTarget is where a browser on https://site.example/ would go for
// the Location header loc, after the WHATWG URL parser's clean-ups: it
// strips leading and trailing C0 controls and spaces, removes every tab
// and newline, and reads a backslash as a slash in http(s) URLs.
func browserTarget(loc string) (*url.URL, bool) {
	loc = strings.TrimFunc(loc, func(r rune) bool { return r <= 0x20 })
	loc = strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(loc)
	ref, err := url.Parse(loc)
	if err != nil {
		return nil, false
	}
	base, _ := url.Parse("https://site.example/")
	return base.ResolveReference(ref), true
}

// FuzzSafeNext checks that whatever the ?next= value, the redirect stays
// on this site, also after any number of percent-decodings, and that
// ordinary paths survive unchanged.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{
		"/", "/threads", "/threads?q=a+b&page=2", "/assistants/asst_1#top", "/files?purpose=assistants",
		"//evil.example", "/\t/evil.example/x", "/%09/evil.example/x", "/\\evil.example", "\\/evil.example",
		"/%5Cevil.example", "/%2F/evil.example", "/%252F%252Fevil.example", "https://evil.example/", "http:evil.example",
		"javascript:alert(1)", "evil.example", "", " /x", "/\x00", "/\u2028/evil.example", "/x\xff", "/%", "/%zz",
		"///evil.example", "/.//evil.example", "/@evil.example", "/x?next=//evil.example",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		if got != "/" && got != next {
			t.Fatalf("safeNext(%q) = %q: neither the input nor /", next, got)
		}
		// Every decoding of the result must stay on the site too.
		s := got
		for range 5 {
			u, ok := browserTarget(s)
			if !ok {
				break
			}
			if u.Host != "site.example" || u.Scheme != "https" {
				t.Fatalf("safeNext(%q) = %q leads to %s", next, got, u)
			}
			d, err := url.PathUnescape(s)
			if err != nil || d == s {
				break
			}
			s = d
		}
		if strings.IndexFunc(got, unicode.IsControl) >= 0 || strings.Contains(got, "\\") {
			t.Fatalf("safeNext(%q) = %q keeps a control character or a backslash", next, got)
		}
		// A plain path of letters and slashes is kept as it is.
		if ok := len(next) > 1 && next[0] == '/' && next[1] != '/' && strings.IndexFunc(next, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r == '/' || r == '_' || r == '-')
		}) < 0; ok && got != next {
			t.Fatalf("safeNext(%q) = %q, want the path kept", next, got)
		}
	})
}
