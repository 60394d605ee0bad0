package main

import (
	"errors"
	"flag"
	"time"
)

// replicaConfig is how this process shares a PostgreSQL deployment with
// other replicas (see README "Replicas").
type replicaConfig struct {
	// RunLease is how long a claim on a run lasts unless renewed.
	RunLease time.Duration
}

// addReplicaFlags registers the flags of running several replicas; the
// returned function validates them after parsing.
func addReplicaFlags(fs *flag.FlagSet, env func(name, def string) string) func() (replicaConfig, error) {
	lease := fs.Duration("run-lease", envDuration(env, "ASSISTANTD_RUN_LEASE", 30*time.Second),
		"how long a replica's claim on a run lasts without renewal (renewed every third of it); a run whose replica vanished is resumed elsewhere after this (env ASSISTANTD_RUN_LEASE)")
	return func() (replicaConfig, error) {
		c := replicaConfig{RunLease: *lease}
		if c.RunLease < time.Second {
			return c, errors.New("--run-lease must be at least 1s")
		}
		return c, nil
	}
}
