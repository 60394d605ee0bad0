// Package static holds the web app's own CSS and JavaScript and the
// front-end libraries installed from the npm registry at build time.
//
// `npm ci` in this directory installs the libraries pinned by
// package-lock.json; its postinstall step (copy-vendor.mjs) copies their
// dist files into vendor/, which is gitignored apart from a .gitkeep so that
// `go build` works on a fresh clone before npm has run. Pages then work
// without the libraries (forms post normally); htmx only enhances them.
package static

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"sort"
)

//go:embed app.css app.js live.js favicon.svg all:vendor
var files embed.FS

// FS is the tree served under /static/.
var FS fs.FS = files

// Version is a short hash of every embedded file, added to asset URLs so
// browsers may cache them forever and still see a new build at once.
var Version = func() string {
	h := sha256.New()
	var paths []string
	_ = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			paths = append(paths, p)
		}
		return nil
	})
	sort.Strings(paths)
	for _, p := range paths {
		b, _ := files.ReadFile(p)
		h.Write([]byte(p))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}()

// HasHTMX reports whether npm's postinstall step has put htmx in place.
func HasHTMX() bool {
	_, err := fs.Stat(files, "vendor/htmx.min.js")
	return err == nil
}
