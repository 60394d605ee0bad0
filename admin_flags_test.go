package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

// TestAdminFlags: --admin-key and --rate-limit-window, from flags or the
// environment, and what they refuse.
func TestAdminFlags(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tt := range []struct {
		args    []string
		env     map[string]string
		key     string
		window  time.Duration
		refusal string
	}{
		{nil, nil, "", time.Minute, ""},
		{[]string{"--admin-key", "sk-admin-0123456789"}, nil, "sk-admin-0123456789", time.Minute, ""},
		{nil, map[string]string{"ASSISTANTD_ADMIN_KEY": "sk-admin-from-env-1", "ASSISTANTD_RATE_LIMIT_WINDOW": "2s"}, "sk-admin-from-env-1", 2 * time.Second, ""},
		{[]string{"--admin-key", "short"}, nil, "", 0, "--admin-key must be at least 16 characters"},
		{[]string{"--rate-limit-window", "10ms"}, nil, "", 0, "--rate-limit-window must be between 100ms and 1m"},
		{[]string{"--rate-limit-window", "2m"}, nil, "", 0, "--rate-limit-window must be between 100ms and 1m"},
	} {
		cfg, err := parseConfig(tt.args, env(tt.env), io.Discard)
		if tt.refusal != "" {
			if err == nil || !strings.Contains(err.Error(), tt.refusal) {
				t.Errorf("%v %v: %v, want %q", tt.args, tt.env, err, tt.refusal)
			}
			continue
		}
		if err != nil || cfg.Admin.AdminKey != tt.key || cfg.Admin.RateWindow != tt.window {
			t.Errorf("%v %v: %+v %v, want key %q window %v", tt.args, tt.env, cfg.Admin, err, tt.key, tt.window)
		}
	}
}
