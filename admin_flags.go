package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"flag"
	"time"

	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/web"
)

// adminConfig is the Admin API's and projects' limits' configuration.
type adminConfig struct {
	// AdminKey, when set, is an admin key for /v1/organization (beside
	// those made in the web app).
	AdminKey string
	// RateWindow is the window projects' rate limits are counted in: a
	// minute, as their names say; shorter only for tests.
	RateWindow time.Duration
}

// addAdminFlags registers the Admin API's flags; the returned function
// validates them after parsing.
func addAdminFlags(fs *flag.FlagSet, env func(name, def string) string) func() (adminConfig, error) {
	key := fs.String("admin-key", env("ASSISTANTD_ADMIN_KEY", ""),
		"an admin key for the Admin API under /v1/organization (projects, their keys, people and settings), at least 16 characters; admin keys can also be made in the web app (env ASSISTANTD_ADMIN_KEY)")
	window := fs.Duration("rate-limit-window", envDuration(env, "ASSISTANTD_RATE_LIMIT_WINDOW", time.Minute),
		"the window projects' per-minute rate limits are counted in; keep the default 1m outside tests (env ASSISTANTD_RATE_LIMIT_WINDOW)")
	return func() (adminConfig, error) {
		c := adminConfig{AdminKey: *key, RateWindow: *window}
		if c.AdminKey != "" && len(c.AdminKey) < 16 {
			return c, errors.New("--admin-key must be at least 16 characters")
		}
		if c.RateWindow < 100*time.Millisecond || c.RateWindow > time.Minute {
			return c, errors.New("--rate-limit-window must be between 100ms and 1m")
		}
		return c, nil
	}
}

// adminKeyChecker accepts the configured admin key (compared in constant
// time) and any stored admin key in force.
func adminKeyChecker(configured string, store *db.Store) web.AdminKeyChecker {
	want := sha256.Sum256([]byte(configured))
	return func(ctx context.Context, key string) (bool, error) {
		got := sha256.Sum256([]byte(key))
		if configured != "" && subtle.ConstantTimeCompare(want[:], got[:]) == 1 {
			return true, nil
		}
		return store.CheckAdminKey(ctx, key)
	}
}
