package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
)

// DefaultSharedDir is where the sandbox keeps its directories when the
// data directory cannot hold them (see placeDir).
const DefaultSharedDir = "/var/lib/assistantd-sandbox"

// placeDir returns the directory the sandbox keeps threads' files and
// kernels' scratch space in: dir, or, when the directories above the data
// directory do not let other users pass (a clone in root's home, mode
// 0700 on Debian), a directory of its own under shared. Kernels run as
// their own users, and bubblewrap resolves the kernel's directories as
// that user, so every directory above them must let it pass; the data
// directory itself and dir are made passable by grantTraversal. The
// directory under shared is named by a hash of dir, so every start with
// the same data directory finds the same threads' files; shared is made
// root's, mode 0711 (pass, no listing). moved says dir was not usable.
func placeDir(dir, shared string) (place string, moved bool, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return dir, false, err
	}
	if blocked(filepath.Dir(filepath.Dir(abs))) == "" {
		return dir, false, nil
	}
	if shared == "" {
		shared = DefaultSharedDir
	}
	if shared, err = filepath.Abs(shared); err != nil {
		return dir, false, err
	}
	if err := os.MkdirAll(shared, 0o711); err != nil {
		return dir, false, fmt.Errorf("sandbox: %w", err)
	}
	if err := os.Lchown(shared, 0, 0); err != nil {
		return dir, false, fmt.Errorf("sandbox: %w", err)
	}
	if err := os.Chmod(shared, 0o711); err != nil {
		return dir, false, fmt.Errorf("sandbox: %w", err)
	}
	if d := blocked(filepath.Dir(shared)); d != "" {
		return dir, false, fmt.Errorf("sandbox: neither the data directory's parents nor %s let other users pass (%s)", shared, d)
	}
	sum := sha256.Sum256([]byte(abs))
	place = filepath.Join(shared, hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(place, 0o700); err != nil {
		return dir, false, fmt.Errorf("sandbox: %w", err)
	}
	return place, true, nil
}

// blocked returns the first of d and the directories above it that does
// not let other users pass, or "".
func blocked(d string) string {
	for ; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil || st.Mode().Perm()&0o001 == 0 {
			return d
		}
		if d == "/" || d == "." {
			return ""
		}
	}
}
