// Command assistantd is a self-hosted, OpenAI-compatible Assistants API
// server with a browser UI. See README.md.
package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/assistantd/assistantd/agent"
	"github.com/assistantd/assistantd/agent/sandbox"
	"github.com/assistantd/assistantd/agent/webhook"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/handlers/api"
	"github.com/assistantd/assistantd/telemetry"
	"github.com/assistantd/assistantd/web"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	run := run
	if len(os.Args) > 1 && os.Args[1] == "copy-data" {
		run = func(ctx context.Context, args []string, _ func(string) string, stdout, stderr io.Writer) error {
			return copyData(ctx, args[1:], stdout, stderr)
		}
	}
	if len(os.Args) > 1 && os.Args[1] == "threads-to-conversations" {
		run = func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
			return threadsToConversations(ctx, args[1:], getenv, stdout, stderr)
		}
	}
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "assistantd:", err)
		os.Exit(1)
	}
}

// config is the validated start-up configuration.
type config struct {
	Addr           string
	DataDir        string
	APIKey         string
	UpstreamURL    *url.URL
	UpstreamKey    string
	MaxUploadBytes int64
	LogLevel       slog.Level
	Web            webConfig
	Store          storeConfig
	Replica        replicaConfig
	Admin          adminConfig
	Providers      []agent.ProviderConfig
	Engine         agent.Config
	// EmbeddingsModel, when set, makes file_search hybrid (BM25 + vectors).
	EmbeddingsModel string
	// QueryRewriteModel, when set, rewrites searches' queries that ask for
	// rewrite_query.
	QueryRewriteModel string
	// WebhookAllow are the networks webhooks may reach although the guard
	// refuses them by default (loopback, private, link-local …).
	WebhookAllow []netip.Prefix
	Code         sandbox.Config
	// InspectRetention is how long upstream exchanges are kept; 0 records none.
	InspectRetention time.Duration
	// MetricsAddr, when set, serves /metrics (Prometheus) on its own
	// listener; DebugAddr, when set (loopback only), serves net/http/pprof.
	MetricsAddr, DebugAddr string
	// MemoryLimit is the Go runtime's soft memory limit (--memory-limit);
	// ≤ 0 leaves the runtime's own (GOMEMLIMIT, or none).
	MemoryLimit int64
}

// parseConfig reads flags, falling back to environment variables, and
// validates the result once. It returns flag.ErrHelp after printing usage
// for --help.
func parseConfig(args []string, getenv func(string) string, stdout io.Writer) (config, error) {
	fs := flag.NewFlagSet("assistantd", flag.ContinueOnError)
	fs.SetOutput(stdout)
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	addr := fs.String("addr", env("ASSISTANTD_ADDR", "127.0.0.1:8080"), "listen address (env ASSISTANTD_ADDR)")
	data := fs.String("data", env("ASSISTANTD_DATA", "./data"), "data directory: the SQLite database and stored file contents (env ASSISTANTD_DATA)")
	apiKey := fs.String("api-key", env("ASSISTANTD_API_KEY", ""),
		"a client key accepted on /v1 (env ASSISTANTD_API_KEY); if none is set and none is stored, one is generated on first start and printed once")
	upstreamURL := fs.String("upstream-url", env("ASSISTANTD_UPSTREAM_URL", "https://api.openai.com/v1"),
		"base URL of the OpenAI-compatible Chat Completions provider runs call (env ASSISTANTD_UPSTREAM_URL)")
	upstreamKey := fs.String("upstream-key", env("ASSISTANTD_UPSTREAM_KEY", getenv("OPENAI_API_KEY")),
		"API key for the upstream provider (env ASSISTANTD_UPSTREAM_KEY, then OPENAI_API_KEY)")
	maxUpload := fs.String("max-upload-bytes", env("ASSISTANTD_MAX_UPLOAD_BYTES", "512MiB"),
		"largest accepted file upload, in bytes or with a KiB/MiB/GiB suffix (env ASSISTANTD_MAX_UPLOAD_BYTES)")
	upstreamModels := fs.String("upstream-models", env("ASSISTANTD_UPSTREAM_MODELS", "*"),
		"comma-separated models (or patterns such as gpt-4o*) the --upstream-url provider serves; * serves every model no providers-file entry names (env ASSISTANTD_UPSTREAM_MODELS)")
	providersFile := fs.String("providers", env("ASSISTANTD_PROVIDERS", ""),
		"YAML or JSON file naming further OpenAI-compatible upstreams and the models each serves (env ASSISTANTD_PROVIDERS)")
	workers := fs.Int("workers", envInt(env, "ASSISTANTD_WORKERS", 256), "runs executed at once (env ASSISTANTD_WORKERS)")
	runTimeout := fs.Duration("run-timeout", envDuration(env, "ASSISTANTD_RUN_TIMEOUT", 10*time.Minute),
		"how long a run may stay unfinished before it expires (expires_at; env ASSISTANTD_RUN_TIMEOUT)")
	maxSteps := fs.Int("max-run-steps", envInt(env, "ASSISTANTD_MAX_RUN_STEPS", 50),
		"steps (model turns and tool rounds) one run may take before it fails (env ASSISTANTD_MAX_RUN_STEPS)")
	retries := fs.Int("upstream-retries", envInt(env, "ASSISTANTD_UPSTREAM_RETRIES", 3),
		"retries of an upstream request that failed with 429, 5xx or a timeout (env ASSISTANTD_UPSTREAM_RETRIES)")
	embeddingsModel := fs.String("embeddings-model", env("ASSISTANTD_EMBEDDINGS_MODEL", ""),
		"embeddings model (served by a configured provider's /v1/embeddings) that makes file_search hybrid: BM25 and vector similarity; none: BM25 only (env ASSISTANTD_EMBEDDINGS_MODEL)")
	queryRewriteModel := fs.String("query-rewrite-model", env("ASSISTANTD_QUERY_REWRITE_MODEL", ""),
		"chat model (served by a configured provider) that rewrites vector store searches' queries when they ask for rewrite_query; none: queries are searched as given (env ASSISTANTD_QUERY_REWRITE_MODEL)")
	webhookAllow := fs.String("webhook-allow-networks", env("ASSISTANTD_WEBHOOK_ALLOW_NETWORKS", ""),
		"comma-separated CIDRs webhooks (and project upstreams set by owners who are not admins) may reach although they are loopback, private, link-local, CGNAT or metadata addresses, e.g. 10.0.0.0/8,fd00::/8; default none (env ASSISTANTD_WEBHOOK_ALLOW_NETWORKS)")
	inspectRetention := fs.Duration("inspect-retention", envDuration(env, "ASSISTANTD_INSPECT_RETENTION", agent.DefaultInspectRetention),
		"how long the upstream inspector keeps each run's exact upstream requests and responses (keys redacted); 0 records none (env ASSISTANTD_INSPECT_RETENTION)")
	metricsAddr := fs.String("metrics-addr", env("ASSISTANTD_METRICS_ADDR", ""),
		"serve Prometheus metrics at /metrics on this address (host:port), a listener of its own without authentication; default off (env ASSISTANTD_METRICS_ADDR)")
	debugAddr := fs.String("debug-addr", env("ASSISTANTD_DEBUG_ADDR", ""),
		"serve Go's profiler (net/http/pprof) at /debug/pprof/ on this loopback address (host:port); default off (env ASSISTANTD_DEBUG_ADDR)")
	memLimit := fs.String("memory-limit", env("ASSISTANTD_MEMORY_LIMIT", "auto"),
		"soft memory limit of the Go heap, e.g. 1GiB: past it the collector works harder instead of letting the heap double what is live; auto keeps GOMEMLIMIT, else takes 90% of the container's (cgroup) limit, else none; off sets none (env ASSISTANTD_MEMORY_LIMIT)")
	logLevel := fs.String("log-level", env("ASSISTANTD_LOG_LEVEL", "info"), "debug, info, warn or error (env ASSISTANTD_LOG_LEVEL)")
	webFlags := addWebFlags(fs, env)
	codeFlags := addCodeFlags(fs, env)
	storeFlags := addStoreFlags(fs, env)
	replicaFlags := addReplicaFlags(fs, env)
	adminFlags := addAdminFlags(fs, env)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "assistantd: a self-hosted, OpenAI-compatible Assistants API server.\n\nUsage: assistantd [flags]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	cfg := config{Addr: *addr, DataDir: *data, APIKey: *apiKey, UpstreamKey: *upstreamKey, InspectRetention: *inspectRetention,
		EmbeddingsModel: *embeddingsModel, QueryRewriteModel: *queryRewriteModel, MetricsAddr: *metricsAddr, DebugAddr: *debugAddr}
	if cfg.InspectRetention < 0 {
		return cfg, errors.New("--inspect-retention must not be negative (0 turns the upstream inspector off)")
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return cfg, fmt.Errorf("invalid --addr %q: %w", cfg.Addr, err)
	}
	if cfg.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(cfg.MetricsAddr); err != nil {
			return cfg, fmt.Errorf("invalid --metrics-addr %q: %w", cfg.MetricsAddr, err)
		}
	}
	if cfg.DebugAddr != "" && !loopback(cfg.DebugAddr) {
		return cfg, fmt.Errorf("invalid --debug-addr %q: the profiler listens on loopback only, e.g. 127.0.0.1:6060", cfg.DebugAddr)
	}
	if cfg.DataDir == "" {
		return cfg, errors.New("--data must not be empty")
	}
	store, err := storeFlags()
	if err != nil {
		return cfg, err
	}
	cfg.Store = store
	if cfg.APIKey != "" && len(cfg.APIKey) < 16 {
		return cfg, errors.New("--api-key must be at least 16 characters")
	}
	u, err := url.Parse(*upstreamURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cfg, fmt.Errorf("invalid --upstream-url %q: expected an http(s) URL such as https://api.openai.com/v1", *upstreamURL)
	}
	cfg.UpstreamURL = u
	if cfg.MaxUploadBytes, err = parseBytes(*maxUpload); err != nil || cfg.MaxUploadBytes < 1 {
		return cfg, fmt.Errorf("invalid --max-upload-bytes %q: expected a positive size such as 536870912 or 512MiB", *maxUpload)
	}
	if cfg.MemoryLimit, err = memoryLimit(*memLimit, getenv, cgroupMemory); err != nil {
		return cfg, fmt.Errorf("invalid --memory-limit %q: %v", *memLimit, err)
	}
	if *workers < 1 || *runTimeout < time.Second || *retries < 0 || *maxSteps < 1 {
		return cfg, errors.New("--workers and --max-run-steps must be at least 1, --run-timeout at least 1s and --upstream-retries at least 0")
	}
	cfg.Engine = agent.Config{Workers: *workers, RunTimeout: *runTimeout, Retries: *retries, MaxSteps: *maxSteps}
	if cfg.Replica, err = replicaFlags(); err != nil {
		return cfg, err
	}
	if cfg.Admin, err = adminFlags(); err != nil {
		return cfg, err
	}
	if cfg.Replica.Role != "all" && cfg.Store.DatabaseURL == "" {
		return cfg, fmt.Errorf("--role %s needs --database-url: replicas share a PostgreSQL database", cfg.Replica.Role)
	}
	cfg.Engine.RunLease, cfg.Engine.APIOnly = cfg.Replica.RunLease, cfg.Replica.Role == "api"
	cfg.Engine.EventLog, cfg.Engine.EventFlush = cfg.Store.DatabaseURL != "", cfg.Replica.EventFlush
	cfg.Engine.Postgres = cfg.Store.DatabaseURL != ""
	if *providersFile != "" {
		if cfg.Providers, err = agent.LoadProviders(*providersFile, getenv); err != nil {
			return cfg, err
		}
	}
	var models []string
	for _, m := range strings.Split(*upstreamModels, ",") {
		if m = strings.TrimSpace(m); m != "" {
			models = append(models, m)
		}
	}
	if len(models) > 0 {
		// The default upstream comes last, so providers-file patterns win
		// over its catch-all.
		cfg.Providers = append(cfg.Providers, agent.ProviderConfig{Name: "default", BaseURL: u.String(),
			APIKey: cfg.UpstreamKey, Models: models})
	}
	if cfg.WebhookAllow, err = webhook.ParseNetworks(*webhookAllow); err != nil {
		return cfg, fmt.Errorf("invalid --webhook-allow-networks: %w", err)
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return cfg, fmt.Errorf("invalid --log-level %q: %w", *logLevel, err)
	}
	if cfg.Web, err = webFlags(); err != nil {
		return cfg, err
	}
	if cfg.Code, err = codeFlags(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// parseBytes reads "1048576", "512MiB", "1GiB", "64KiB" (also KB/MB/GB as
// powers of 1000).
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, err
	}
	if n > (1<<62)/mult {
		return 0, errors.New("too large")
	}
	return n * mult, nil
}

// envInt is the integer in the environment variable name, or def when it
// is unset or not an integer.
func envInt(env func(name, def string) string, name string, def int) int {
	if n, err := strconv.Atoi(env(name, "")); err == nil {
		return n
	}
	return def
}

// envDuration is envInt for durations.
func envDuration(env func(name, def string) string, name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(env(name, "")); err == nil {
		return d
	}
	return def
}

// run starts the server and blocks until ctx is cancelled, then shuts down
// gracefully. Tests call it directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	applyMemoryLimit(cfg.MemoryLimit)

	// Listen first: a port already in use must stop the start before a
	// first-start key is generated and printed (it is shown only once).
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()

	// On PostgreSQL, Open holds a start-up lock until StartupDone, so
	// processes starting at once migrate and create the first key, user
	// and session keys one after another.
	store, err := db.Open(ctx, cfg.DataDir, cfg.Store.options()...)
	if err != nil {
		return err
	}
	defer store.Close()
	log.Info("store", store.Describe(ctx)...)
	if err := joinReplicas(ctx, store, &cfg); err != nil {
		return err
	}

	if cfg.APIKey == "" {
		n, err := store.CountAPIKeys(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			_, secret, err := store.CreateAPIKey(ctx, db.KeyOptions{Name: "generated on first start"})
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "Generated an API key for /v1. It is shown only this once; store it now:\n\n    %s\n\n", secret)
		}
	}

	providers, err := agent.NewProviders(cfg.Providers, upstreamClient())
	if err != nil {
		return err
	}
	// file_search: ingestion and search outlive the engine (its runs
	// search until they stop), so they stop after it.
	rag, err := agent.NewRetrieval(store, providers, cfg.EmbeddingsModel, cfg.QueryRewriteModel, log)
	if err != nil {
		return err
	}
	ragCtx, cancelRAG := context.WithCancel(context.WithoutCancel(ctx))
	var ingesting sync.WaitGroup
	ingesting.Go(func() { rag.Ingester.Run(ragCtx) })
	defer func() { cancelRAG(); ingesting.Wait() }()
	cfg.Engine.Builtins = append(cfg.Engine.Builtins, agent.NewFileSearch(store, rag.Searcher, rag.Ingester, agent.FileSearchWait))
	// One delivery client, whose dialer checks every address it connects
	// to, serves the runs' webhooks, the API's URL checks and the web app's
	// test calls.
	hooks := webhook.NewClient(webhook.NewGuard(cfg.WebhookAllow, nil))
	cfg.Engine.Functions = agent.NewWebhooks(store, hooks, log)
	// code_interpreter: each thread's Python kernel in its sandbox, files
	// under the data directory. Closed after the engine stops.
	cfg.Code.Dir, cfg.Code.Logger = filepath.Join(cfg.DataDir, "sandbox"), log
	sb, err := sandbox.NewLocal(cfg.Code)
	if err != nil {
		return err
	}
	defer sb.Close()
	code := agent.NewCodeInterpreter(sb, store)
	if store.Postgres() {
		code.Share(cfg.Engine.Replica, cfg.Code.IdleTimeout)
	}
	cfg.Engine.Builtins = append(cfg.Engine.Builtins, code)
	// The inspector's writer stops after the engine (deferred calls run
	// last first), so it records the last exchanges of the runs that stop.
	inspector := agent.NewInspector(store, cfg.InspectRetention, log)
	defer inspector.Close()
	// Housekeeping: the engine runs these beside its own sweep.
	var responses *api.Responses
	var engine *agent.Engine // set before the engine starts the sweeps
	cfg.Engine.Sweeps = []agent.Sweep{
		{Name: "expired objects", Every: time.Minute, Run: store.SweepExpired},
		{Name: "upstream inspector", Every: time.Hour, Run: inspector.Sweep},
		{Name: "rate counters", Every: time.Minute, Run: store.PruneRateCounters},
		// Set before the engine starts the sweeps (below).
		{Name: "unstored responses", Every: time.Minute, Run: func(ctx context.Context) (int, error) { return responses.SweepUnstored(ctx) }},
		{Name: "expired containers", Every: time.Minute, Run: func(ctx context.Context) (int, error) {
			// The kernels may be on any replica.
			return code.ExpireContainers(ctx, store.ExpireContainers, engine.ForgetEverywhere)
		}},
	}
	if cfg.Engine.EventLog {
		cfg.Engine.Sweeps = append(cfg.Engine.Sweeps, agent.Sweep{Name: "run events", Every: time.Minute,
			Run: func(ctx context.Context) (int, error) { return store.PruneRunEvents(ctx, cfg.Replica.EventRetention) }})
	}
	engine = agent.New(store, providers, agent.NewHub(time.Minute), log, cfg.Engine)
	responses = api.NewResponses(store, engine, log)
	engine.EnableInspector(inspector)
	engine.EnableProjects(store, cfg.Admin.RateWindow, hooks.Guard().DialContext)
	// Traces go where the OTEL_* environment says; none without it.
	var tracer trace.TracerProvider
	if telemetry.TracesEnabled(getenv) {
		tp, shutdown, err := telemetry.NewTracerProvider(ctx, getenv)
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = shutdown(sctx)
		}()
		tracer = tp
		engine.EnableTracing(tp)
	}
	// The metrics are kept whether or not --metrics-addr serves them: the
	// web app's System page draws their last hour.
	metrics := telemetry.NewMetrics()
	metrics.DBPools(store.PoolStats)
	metrics.Counter("assistantd_db_write_groups_total", "Write transactions of SQLite's group commit (0 on PostgreSQL).",
		func() float64 { return float64(store.GroupCommitStats().Groups) })
	metrics.Counter("assistantd_db_group_writes_total", "Store writes committed by those transactions, several to a group under load.",
		func() float64 { return float64(store.GroupCommitStats().Writes) })
	metrics.Gauge("assistantd_vector_store_ingestion_backlog", "Vector store files waiting for or in ingestion.",
		func() float64 {
			qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			n, err := store.IngestionBacklog(qctx)
			if err != nil {
				return math.NaN()
			}
			return float64(n)
		})
	metrics.Gauge("assistantd_vector_store_ingestion_active", "Vector store files being ingested now.",
		func() float64 { return float64(rag.Ingester.Active()) })
	rag.Ingester.Observe(metrics.Ingested)
	engine.EnableMetrics(metrics)
	history := telemetry.NewHistory(metrics, systemSampleEvery)
	history.Start(ctx)
	// The engine outlives the HTTP server during shutdown: requests finish
	// first, then runs in flight stop (and resume on the next start).
	engineCtx, stopEngine := context.WithCancel(context.WithoutCancel(ctx))
	defer func() { stopEngine(); engine.Wait() }()
	if err := engine.Start(engineCtx); err != nil {
		return err
	}

	webhooks := api.NewWebhooks(store, hooks)
	webUI, setupToken, err := newWebUI(ctx, cfg, store, engine, responses, hooks, rag, sb.Problem, history, stdout, log)
	if err != nil {
		return err
	}
	store.StartupDone()
	v1 := api.NewAPI(store, engine, cfg.MaxUploadBytes, log, api.WithVectorStores(store, rag), api.WithProjectSettings(store))
	handler := web.New(web.Config{
		UI:         webUI,
		API:        v1,
		Responses:  responses,
		Containers: api.NewContainers(store, containerKernels{code, engine}, cfg.MaxUploadBytes, log),
		Webhooks:   webhooks,
		CheckKey:   keyChecker(cfg.APIKey, store),
		// The Admin API: projects and their settings, for admin keys.
		Organization:  api.NewOrganization(store, engine.Models),
		CheckAdminKey: adminKeyChecker(cfg.Admin.AdminKey, store),
		Health:        store.Ping,
		Ready:         map[string]func() string{"code_interpreter": sb.Problem},
		Logger:        log,
		// HSTS behind a TLS-terminating proxy, as for the cookies.
		TrustProxy: cfg.Web.TrustProxy,
		Metrics:    metrics,
		Tracer:     tracer,
		HealthOnly: cfg.Replica.Role == "worker",
	})

	// Header, body-rate, write-stall and idle limits: see web.Limits.
	srv := web.NewHTTPServer(handler, web.DefaultLimits(), log)
	srv.BaseContext = func(net.Listener) context.Context { return context.WithoutCancel(ctx) }
	srv.RegisterOnShutdown(v1.CloseStreams)
	srv.RegisterOnShutdown(responses.CloseStreams)
	if webUI != nil {
		srv.RegisterOnShutdown(webUI.CloseStreams)
	}
	if cfg.MetricsAddr != "" {
		addr, stop, err := web.ServeAside(ctx, cfg.MetricsAddr, "/metrics", metrics.Handler(), log)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		defer stop()
		fmt.Fprintf(stdout, "metrics listening on http://%s/metrics\n", addr)
	}
	if cfg.DebugAddr != "" {
		addr, stop, err := web.ServeAside(ctx, cfg.DebugAddr, "/debug/pprof/", web.Pprof(), log)
		if err != nil {
			return fmt.Errorf("--debug-addr: %w", err)
		}
		defer stop()
		fmt.Fprintf(stdout, "profiler listening on http://%s/debug/pprof/\n", addr)
	}
	fmt.Fprintf(stdout, "assistantd listening on http://%s (data in %s)\n", ln.Addr(), cfg.DataDir)
	if setupToken != "" {
		fmt.Fprintf(stdout, "No web app user exists yet. Create the admin at this one-time link:\n\n    %s\n\n", setupLink(ln.Addr(), setupToken))
	}
	log.Info("listening", "addr", ln.Addr().String(), "data", cfg.DataDir, "upstream", cfg.UpstreamURL.Redacted())
	if cfg.UpstreamKey == "" && cfg.UpstreamURL.Host == "api.openai.com" {
		fmt.Fprintln(stdout, "Warning: runs need an upstream model provider, and --upstream-key (or OPENAI_API_KEY) is not set for", cfg.UpstreamURL.String()+".",
			"Runs will fail until you set it, or point --upstream-url at a local server such as Ollama.")
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// containerKernels stops a deleted container's kernel on whichever
// replica runs it: here, and through the other replicas' forget
// notification (as an expired container's).
type containerKernels struct {
	*agent.CodeInterpreter
	engine *agent.Engine
}

func (k containerKernels) Forget(key string) error {
	k.engine.ForgetEverywhere(key)
	return nil
}

// keyChecker accepts the configured key (compared in constant time), which
// speaks for the Default project, and any stored key that is in force.
func keyChecker(configured string, store *db.Store) web.KeyChecker {
	want := sha256.Sum256([]byte(configured))
	return func(ctx context.Context, key string) (db.Principal, bool, error) {
		got := sha256.Sum256([]byte(key))
		if configured != "" && subtle.ConstantTimeCompare(want[:], got[:]) == 1 {
			return db.Principal{ProjectID: db.DefaultProjectID}, true, nil
		}
		return store.CheckAPIKey(ctx, key)
	}
}

// loopback reports whether addr (host:port) names a loopback host.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
