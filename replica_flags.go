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
}

// addReplicaFlags registers the flags of running several replicas; the
// returned function validates them after parsing.
func addReplicaFlags(fs *flag.FlagSet, env func(name, def string) string) func() (replicaConfig, error) {
	lease := fs.Duration("run-lease", envDuration(env, "ASSISTANTD_RUN_LEASE", 30*time.Second),
		"how long a replica's claim on a run lasts without renewal (renewed every third of it); a run whose replica vanished is resumed elsewhere after this (env ASSISTANTD_RUN_LEASE)")
	role := fs.String("role", env("ASSISTANTD_ROLE", "all"),
		"what this replica does: all, api (serves the API and web app, executes no runs) or worker (executes runs, serves only /healthz, /readyz and --metrics-addr) (env ASSISTANTD_ROLE)")
	return func() (replicaConfig, error) {
		c := replicaConfig{RunLease: *lease, Role: *role}
		if c.Role != "all" && c.Role != "api" && c.Role != "worker" {
			return c, fmt.Errorf("invalid --role %q: expected all, api or worker", c.Role)
		}
		if c.RunLease < time.Second {
			return c, errors.New("--run-lease must be at least 1s")
		}
		return c, nil
	}
}
