package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/assistantd/assistantd/agent/webhook"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/ui"
	"github.com/assistantd/assistantd/static"
	"github.com/assistantd/assistantd/telemetry"
)

// webConfig is the web app's part of the configuration.
type webConfig struct {
	AdminEmail    string
	AdminPassword string
	TrustProxy    bool
	SessionTTL    time.Duration
}

// addWebFlags registers the web app's flags; the returned function
// validates them after parsing.
func addWebFlags(fs *flag.FlagSet, env func(name, def string) string) func() (webConfig, error) {
	adminEmail := fs.String("admin-email", env("ASSISTANTD_ADMIN_EMAIL", ""),
		"create this web app admin at start when no user exists (env ASSISTANTD_ADMIN_EMAIL); without it a one-time setup link is printed")
	adminPassword := fs.String("admin-password", env("ASSISTANTD_ADMIN_PASSWORD", ""),
		"password of --admin-email, at least 10 characters (env ASSISTANTD_ADMIN_PASSWORD)")
	trustProxy := fs.Bool("trust-proxy", env("ASSISTANTD_TRUST_PROXY", "") == "true",
		"trust X-Forwarded-Proto from a TLS-terminating reverse proxy, so session cookies are marked Secure (env ASSISTANTD_TRUST_PROXY=true)")
	ttl := fs.String("session-ttl", env("ASSISTANTD_SESSION_TTL", "12h"),
		"how long a web app sign-in lasts, however active (env ASSISTANTD_SESSION_TTL)")
	return func() (webConfig, error) {
		w := webConfig{AdminEmail: strings.TrimSpace(*adminEmail), AdminPassword: *adminPassword, TrustProxy: *trustProxy}
		if (w.AdminEmail == "") != (w.AdminPassword == "") {
			return w, errors.New("--admin-email and --admin-password go together")
		}
		if w.AdminPassword != "" && (len(w.AdminPassword) < db.MinPasswordLen || len(w.AdminPassword) > db.MaxPasswordBytes) {
			return w, fmt.Errorf("--admin-password must be %d characters to %d bytes long", db.MinPasswordLen, db.MaxPasswordBytes)
		}
		d, err := time.ParseDuration(*ttl)
		if err != nil || d < time.Minute {
			return w, fmt.Errorf("invalid --session-ttl %q: expected a duration of at least 1m, such as 12h", *ttl)
		}
		w.SessionTTL = d
		return w, nil
	}
}

// newWebUI builds the web app. When no user exists it creates the
// configured admin, or else returns a random one-time setup token that
// /setup accepts until the first user exists (run prints the link).
func newWebUI(ctx context.Context, cfg config, store *db.Store, engine ui.Engine, responses ui.ResponseStarter, hooks *webhook.Client,
	rag ui.Retriever, codeProblem func() string, history *telemetry.History, stdout io.Writer, log *slog.Logger) (*ui.UI, string, error) {
	setupToken, err := firstUser(ctx, cfg.Web, store, stdout, log)
	if err != nil {
		return nil, "", err
	}
	// Cookie keys are generated once and kept, so sign-ins survive restarts.
	hashKey, err1 := store.Secret(ctx, "session_hash_key", 64)
	blockKey, err2 := store.Secret(ctx, "session_block_key", 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, "", err
	}
	if !static.HasHTMX() {
		log.Warn("htmx is not embedded: run `npm ci` in static/ before building; pages still work, less smoothly")
	}
	webUI := ui.New(ui.Config{
		Store: store, Engine: engine, Responses: responses, Webhooks: hooks, HashKey: hashKey, BlockKey: blockKey, SessionTTL: cfg.Web.SessionTTL,
		TrustProxy: cfg.Web.TrustProxy, SetupToken: setupToken, MaxUpload: cfg.MaxUploadBytes,
		AssetVersion: static.Version, HTMX: static.HasHTMX(), Log: log,
		VectorStores: store, Retriever: rag, CodeProblem: codeProblem, History: history,
	})
	return webUI, setupToken, nil
}

func firstUser(ctx context.Context, w webConfig, store *db.Store, stdout io.Writer, log *slog.Logger) (string, error) {
	n, err := store.CountUsers(ctx)
	if err != nil || n > 0 {
		return "", err
	}
	if w.AdminEmail != "" {
		usr, err := store.CreateUser(ctx, w.AdminEmail, db.RoleAdmin, w.AdminPassword)
		if err != nil {
			return "", fmt.Errorf("create admin %s: %w", w.AdminEmail, err)
		}
		// An admin acts as an owner everywhere; listed as the Default
		// project's owner too, as the projects migration listed every admin.
		if err := store.SetMember(ctx, db.DefaultProjectID, usr.ID, db.ProjectOwner); err != nil {
			return "", fmt.Errorf("create admin %s: %w", w.AdminEmail, err)
		}
		log.Info("web app admin created from configuration", "email", w.AdminEmail)
		fmt.Fprintf(stdout, "Created the web app admin %s.\n", w.AdminEmail)
		return "", nil
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// setupLink is the first-run link for the listen address; an unspecified
// host (0.0.0.0, ::, as in a container) is shown as localhost.
func setupLink(addr net.Addr, token string) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			host = "localhost"
		}
		host = net.JoinHostPort(host, port)
	} else {
		host = addr.String()
	}
	return "http://" + host + "/setup?token=" + url.QueryEscape(token)
}

// systemSampleEvery is how often the System page's figures are sampled
// (120 samples make its hour).
const systemSampleEvery = 30 * time.Second
