package main

import (
	"errors"
	"flag"
	"fmt"
	"time"
)

// replicaConfig is how this process shares a PostgreSQL deployment with
// other replicas (see README "Replicas").
type replicaConfig struct {
	// RunLease is how long a claim on a run lasts unless renewed.
	RunLease time.Duration
	// Role is what this replica does: all (the default), api (serves the
	// API and the web app, executes no runs) or worker (executes runs,
	// serves only /healthz, /readyz and, when configured, /metrics).
	Role string
	// EventFlush bounds how long text deltas wait to be written to the
	// durable event log together (PostgreSQL).
	EventFlush time.Duration
	// EventRetention is how long the durable event log keeps events.
	EventRetention time.Duration
}

// addReplicaFlags registers the flags of running several replicas; the
// returned function validates them after parsing.
func addReplicaFlags(fs *flag.FlagSet, env func(name, def string) string) func() (replicaConfig, error) {
	lease := fs.Duration("run-lease", envDuration(env, "ASSISTANTD_RUN_LEASE", 30*time.Second),
		"how long a replica's claim on a run lasts without renewal (renewed every third of it); a run whose replica vanished is resumed elsewhere after this (env ASSISTANTD_RUN_LEASE)")
	role := fs.String("role", env("ASSISTANTD_ROLE", "all"),
		"what this replica does: all, api (serves the API and web app, executes no runs) or worker (executes runs, serves only /healthz, /readyz and --metrics-addr) (env ASSISTANTD_ROLE)")
	flush := fs.Duration("event-flush", envDuration(env, "ASSISTANTD_EVENT_FLUSH", 50*time.Millisecond),
		"with PostgreSQL, how long streamed text waits to be written to the shared event log in one batch (env ASSISTANTD_EVENT_FLUSH)")
	retention := fs.Duration("event-retention", envDuration(env, "ASSISTANTD_EVENT_RETENTION", 24*time.Hour),
		"with PostgreSQL, how long runs' streamed events are kept for readers on any replica; older runs are served from their stored state (env ASSISTANTD_EVENT_RETENTION)")
	return func() (replicaConfig, error) {
		c := replicaConfig{RunLease: *lease, Role: *role, EventFlush: *flush, EventRetention: *retention}
		if c.EventFlush < time.Millisecond || c.EventFlush > time.Second {
			return c, errors.New("--event-flush must be between 1ms and 1s")
		}
		if c.EventRetention < time.Minute {
			return c, errors.New("--event-retention must be at least 1m")
		}
		if c.Role != "all" && c.Role != "api" && c.Role != "worker" {
			return c, fmt.Errorf("invalid --role %q: expected all, api or worker", c.Role)
		}
		if c.RunLease < time.Second {
			return c, errors.New("--run-lease must be at least 1s")
		}
		return c, nil
	}
}
