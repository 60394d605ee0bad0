package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"go.yaml.in/yaml/v3"
)

// ProviderConfig describes one OpenAI-compatible Chat Completions upstream.
type ProviderConfig struct {
	Name    string `yaml:"name" json:"name"`
	BaseURL string `yaml:"base_url" json:"base_url"`
	// APIKey, or the name of an environment variable holding it.
	APIKey    string `yaml:"api_key" json:"api_key"`
	APIKeyEnv string `yaml:"api_key_env" json:"api_key_env"`
	// Models this provider serves: exact names or path.Match patterns
	// ("llama3*", "*"). Exact names anywhere win over patterns.
	Models []string `yaml:"models" json:"models"`
	// NoStream makes runs call the upstream without streaming, for
	// servers whose streaming of tool calls is broken.
	NoStream bool `yaml:"no_stream" json:"no_stream"`
	// Timeout bounds one upstream request (default 5 minutes).
	Timeout time.Duration `yaml:"timeout" json:"timeout"`
	// ContextTokens is the models' context window. When set, the "auto"
	// truncation strategy drops the oldest history to fit it (leaving room
	// for the answer), as OpenAI did.
	ContextTokens int64 `yaml:"context_tokens" json:"context_tokens"`
}

type providersFile struct {
	Providers []ProviderConfig `yaml:"providers"`
}

// LoadProviders reads a providers file (YAML or JSON) and resolves keys
// from the environment through getenv.
func LoadProviders(file string, getenv func(string) string) ([]ProviderConfig, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read providers file: %w", err)
	}
	var pf providersFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&pf); err != nil {
		return nil, fmt.Errorf("parse providers file %s: %w", file, err)
	}
	for i := range pf.Providers {
		p := &pf.Providers[i]
		if p.APIKey == "" && p.APIKeyEnv != "" {
			p.APIKey = getenv(p.APIKeyEnv)
		}
		if err := p.validate(); err != nil {
			return nil, fmt.Errorf("providers file %s: provider %d: %w", file, i+1, err)
		}
	}
	return pf.Providers, nil
}

func (p ProviderConfig) validate() error {
	if p.Name == "" {
		return errors.New("name is required")
	}
	u, err := url.Parse(p.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s: base_url %q is not an http(s) URL", p.Name, p.BaseURL)
	}
	if len(p.Models) == 0 {
		return fmt.Errorf("%s: models must list at least one model name or pattern", p.Name)
	}
	for _, m := range p.Models {
		if _, err := path.Match(m, ""); err != nil {
			return fmt.Errorf("%s: bad model pattern %q", p.Name, m)
		}
	}
	return nil
}

// Provider is a configured upstream with its client.
type Provider struct {
	ProviderConfig
	Client openai.Client

	project string // the project whose own upstream this is; "" for a configured one
}

// Providers routes a model name to the provider that serves it.
type Providers struct {
	list       []*Provider
	httpClient *http.Client // nil: the SDK's default

	mu     sync.Mutex
	cache  []Model
	cached time.Time
}

// NewProviders builds clients for each provider. The SDK's own retries are
// off: the engine retries itself, so that it controls what a client sees.
func NewProviders(cfgs []ProviderConfig, httpClient *http.Client) (*Providers, error) {
	ps := &Providers{httpClient: httpClient}
	names := map[string]bool{}
	for _, c := range cfgs {
		if err := c.validate(); err != nil {
			return nil, err
		}
		if names[c.Name] {
			return nil, fmt.Errorf("provider name %q used twice", c.Name)
		}
		names[c.Name] = true
		ps.list = append(ps.list, ps.newProvider(c, nil))
	}
	return ps, nil
}

// newProvider builds the client of one provider (a configured one, or a
// project's own upstream), on client (nil: the providers' own).
func (ps *Providers) newProvider(c ProviderConfig, client *http.Client) *Provider {
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Minute
	}
	key := c.APIKey
	if key == "" {
		key = "unused" // local servers (Ollama, vLLM) ignore the key, the SDK wants one
	}
	opts := []option.RequestOption{
		option.WithBaseURL(strings.TrimSuffix(c.BaseURL, "/") + "/"),
		option.WithAPIKey(key),
		option.WithMaxRetries(0),
		option.WithRequestTimeout(c.Timeout),
		// Records runs' exchanges when the request's context asks
		// for it (see inspect.go); a no-op otherwise.
		option.WithMiddleware(inspectMiddleware),
	}
	if client == nil {
		client = ps.httpClient
	}
	if client != nil {
		opts = append(opts, option.WithHTTPClient(client))
	}
	return &Provider{ProviderConfig: c, Client: openai.NewClient(opts...)}
}

// For returns the provider serving model: an exact name first, then the
// first matching pattern in configuration order.
func (ps *Providers) For(model string) (*Provider, bool) {
	for _, p := range ps.list {
		if slices.Contains(p.Models, model) {
			return p, true
		}
	}
	for _, p := range ps.list {
		for _, pat := range p.Models {
			if ok, _ := path.Match(pat, model); ok {
				return p, true
			}
		}
	}
	return nil, false
}

// Model is an entry of GET /v1/models.
type Model struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// Models lists the models the providers serve: exact names as configured,
// and for pattern entries the upstream's own model list filtered by the
// pattern (fetched with a short timeout and cached for a minute; an
// unreachable upstream contributes nothing).
func (ps *Providers) Models(ctx context.Context) []Model {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.cache != nil && time.Since(ps.cached) < time.Minute {
		return ps.cache
	}
	seen := map[string]bool{}
	out := []Model{}
	add := func(id, owner string, created int64) {
		if !seen[id] {
			seen[id] = true
			out = append(out, Model{ID: id, Object: "model", Created: created, OwnedBy: owner})
		}
	}
	for _, p := range ps.list {
		var patterns []string
		for _, m := range p.Models {
			if strings.ContainsAny(m, "*?[") {
				patterns = append(patterns, m)
			} else {
				add(m, p.Name, 0)
			}
		}
		if len(patterns) == 0 {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		page, err := p.Client.Models.List(lctx)
		cancel()
		if err != nil {
			continue
		}
		for _, m := range page.Data {
			for _, pat := range patterns {
				if ok, _ := path.Match(pat, m.ID); ok {
					add(m.ID, p.Name, m.Created)
					break
				}
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	ps.cache, ps.cached = out, time.Now()
	return out
}

// Serves reports whether a configured provider serves model.
func (e *Engine) Serves(model string) bool {
	_, ok := e.providers.For(model)
	return ok
}
