// Package config reads obelisk.toml (through viper), applies defaults and OBELISK_*
// environment overrides, and turns it into the engine's configuration.
package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/api"
	"github.com/obelisk-go/obelisk/auth"
	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/hostguard"
	"github.com/obelisk-go/obelisk/oci"
	"github.com/obelisk-go/obelisk/tracing"
	"github.com/obelisk-go/obelisk/wasmhost"
	"github.com/obelisk-go/obelisk/webhook"
)

// Defaults (contract: documented in examples/obelisk.toml and the README).
const (
	DefaultDataDir         = "obelisk-data"
	DefaultListeningAddr   = "127.0.0.1:5005"
	DefaultWebUIAddr       = "127.0.0.1:8080" // "" or "off" disables the web UI
	DefaultMaxRetries      = 5
	DefaultRetryExpBackoff = 100 * time.Millisecond
	DefaultLockExpiry      = time.Second
	DefaultMaxConcurrency  = 100 // activities
	DefaultMaxResident     = 64  // also the default max_concurrency of a workflow
)

// Lower bounds of durations: below them a value is a mistake (a unit forgotten or
// mistyped) rather than a setting, and would fail every run or retry in a busy loop.
const (
	MinLockExpiry      = 100 * time.Millisecond    // exec.lock_expiry
	MinMaxDuration     = 100 * time.Millisecond    // exec.max_duration
	MinRetryExpBackoff = actors.MinRetryExpBackoff // retry_exp_backoff
	MinRequestTimeout  = 100 * time.Millisecond    // a webhook endpoint's request_timeout
)

// Bounds of the event store's sizes ([store]). Below the minimums Pebble would flush or
// evict on nearly every commit; a memtable cannot reach 4 GiB (Pebble's offsets are
// 32-bit).
const (
	MinStoreCacheSize    = 1 << 20 // store.cache_size
	MinStoreMemTableSize = 1 << 20 // store.memtable_size
	maxStoreMemTableSize = 4<<30 - 1
)

// DefaultGoMemoryLimit is the default of server.go_memory_limit, the soft limit of the Go
// runtime's memory (heap, stacks, its own structures; not guest memories, compiled code
// or the store's cache and memtables, which are outside it): none. Under a limit the
// garbage collector works harder only when the heap nears it (and the server lets the
// heap grow to three times what is live: cli's setGoMemoryLimit), but a server whose live
// heap needs more than the limit keeps collecting, up to the runtime's cap of about half
// the CPU. A fixed default cannot know the deployment: 128 MiB saved nothing measurable
// at the peak of 2,000 × fiboa(1,3), and with 1,000 kept-alive activities in memory the
// server spent 165% of a core instead of 15% (docs/benchmarks.md, "End of session 6").
const DefaultGoMemoryLimit = 0

// MinGoMemoryLimit is the least server.go_memory_limit: the server's heap while idle with
// a few components is tens of MiB.
const MinGoMemoryLimit = 32 << 20

// File is obelisk.toml.
type File struct {
	DataDir  string `mapstructure:"data_dir"`
	CacheDir string `mapstructure:"cache_dir"`
	API      struct {
		ListeningAddr   string `mapstructure:"listening_addr"`
		MaxRequestBytes int    `mapstructure:"max_request_bytes"`
		MaxParamsBytes  int    `mapstructure:"max_params_bytes"`
		// AllowedHosts: the Host names a loopback listener answers to besides the
		// loopback ones (hostguard); ["*"] = any.
		AllowedHosts []string `mapstructure:"allowed_hosts"`
		// AuthTokensFile: the bearer tokens every API call needs (auth.LoadTokens);
		// "" = none needed.
		AuthTokensFile string `mapstructure:"auth_tokens_file"`
		// MetricsAuth: /metrics needs a token too (of any role).
		MetricsAuth bool     `mapstructure:"metrics_auth"`
		TLSFiles    TLSFiles `mapstructure:",squash"`
	} `mapstructure:"api"`
	WebUI struct {
		ListeningAddr string   `mapstructure:"listening_addr"`
		AllowedHosts  []string `mapstructure:"allowed_hosts"` // as API.AllowedHosts
		TLSFiles      TLSFiles `mapstructure:",squash"`
	} `mapstructure:"webui"`
	Wasm struct {
		// Snapshots: instances restored from a snapshot of an initialised instance
		// (default). false: every instance runs _initialize (a baseline to compare).
		WorkflowSnapshots bool `mapstructure:"workflow_snapshots"`
		ActivitySnapshots bool `mapstructure:"activity_snapshots"`
		// InstanceReuse: an instance whose run ended normally is reset to its
		// snapshot and reused (default). false: every instance is closed after its run.
		InstanceReuse bool `mapstructure:"instance_reuse"`
		// MemoryBudget is the guest memory the instances of the runs in memory may hold
		// at once, e.g. "4GiB" ("" = half the machine's memory, at least 2 GiB).
		MemoryBudget string `mapstructure:"memory_budget"`
	} `mapstructure:"wasm"`
	Workflows struct {
		MaxResident int `mapstructure:"max_resident"`
		// SnapshotEvery: a workflow instance leaving memory while it waits is
		// snapshotted when its history grew by this many events since its last
		// snapshot, and resumed from it later instead of replayed; 0 = never.
		SnapshotEvery int `mapstructure:"snapshot_every"`
	} `mapstructure:"workflows"`
	// Logs: the guest log lines stored with each execution.
	Logs struct {
		// MaxPerExecution lines are kept per execution, the first ones; later ones are
		// counted only. 0 keeps none.
		MaxPerExecution int `mapstructure:"max_per_execution"`
	} `mapstructure:"logs"`
	// Store sizes the event store's memory, e.g. "32MiB" ("" = the events package's
	// default).
	Store struct {
		CacheSize    string `mapstructure:"cache_size"`
		MemTableSize string `mapstructure:"memtable_size"`
	} `mapstructure:"store"`
	// Server: the server process itself.
	Server struct {
		// GoMemoryLimit is the soft limit of the Go runtime's memory, e.g. "128MiB"
		// ("" = DefaultGoMemoryLimit, "off" = none).
		GoMemoryLimit string `mapstructure:"go_memory_limit"`
		// Labels are the labels of this server's executors: they run the activities
		// whose required_labels they include; the others are left to external workers.
		Labels []string `mapstructure:"labels"`
		// MaxPending bounds the executions waiting in all queues together (0: no
		// limit): beyond it new submissions are refused with resource_exhausted.
		MaxPending int `mapstructure:"max_pending"`
	} `mapstructure:"server"`
	// OCI: how registries of location.oci are reached.
	OCI struct {
		// PlainHTTP lists registries (host or host:port) reached over plain HTTP
		// instead of HTTPS; loopback registries always are.
		PlainHTTP []string `mapstructure:"plain_http"`
	} `mapstructure:"oci"`
	// Retention deletes the trees of top-level executions that finished long ago.
	Retention  Retention  `mapstructure:"retention"`
	Activities []Activity `mapstructure:"activity_wasm"`
	Workflow   []Workflow `mapstructure:"workflow"`
	Stubs      []Stub     `mapstructure:"activity_stub"`
	// Queues set the limits of execution queues shared by components (queues.go).
	Queues []Queue `mapstructure:"queue"`
	// KVConfig are read-only buckets of the built-in KV store, read from TOML files.
	KVConfig []KVConfig `mapstructure:"kv_config"`
	// Webhook endpoints and their HTTP servers (webhook.go).
	HTTPServers      []HTTPServer      `mapstructure:"http_server"`
	WebhookEndpoints []WebhookEndpoint `mapstructure:"webhook_endpoint"`
	// Triggers are long-running modules restarted when they end (trigger.go).
	Triggers []Trigger `mapstructure:"trigger"`
	// Schedules submit functions periodically (schedule.go).
	Schedules []Schedule `mapstructure:"schedule"`
	// Tracing exports OpenTelemetry spans of executions over OTLP/HTTP (package tracing).
	Tracing struct {
		Enabled     bool    `mapstructure:"enabled"`
		Endpoint    string  `mapstructure:"endpoint"` // the OTLP/HTTP traces URL
		ServiceName string  `mapstructure:"service_name"`
		SampleRatio float64 `mapstructure:"sample_ratio"` // of new traces, 0..1
	} `mapstructure:"tracing"`
	// Cluster makes this server a node of a cluster (cluster.go); nil: a single node.
	Cluster *ClusterFile `mapstructure:"cluster"`
}

// Defaults of [tracing] (contract: documented in examples/obelisk.toml).
const (
	DefaultTracingEndpoint    = "http://localhost:4318/v1/traces"
	DefaultTracingServiceName = "obelisk"
)

// KVConfig is a [[kv_config]]: the bucket, and the TOML file its entries are read from.
type KVConfig struct {
	Bucket   string   `mapstructure:"bucket"`
	Location Location `mapstructure:"location"`
}

// Location says where a component's .wasm file is: a file (path), or an OCI reference
// (oci, REGISTRY/REPOSITORY:TAG or @sha256:DIGEST) pulled into the component store at
// start.
type Location struct {
	Path string `mapstructure:"path"`
	OCI  string `mapstructure:"oci"`
}

// Exec configures a component's executor.
type Exec struct {
	LockExpiry     *time.Duration `mapstructure:"lock_expiry"`
	MaxConcurrency *int           `mapstructure:"max_concurrency"`
	// MaxPending bounds the executions waiting in the component's queue (0: no limit):
	// beyond it new submissions are refused with resource_exhausted.
	MaxPending *int `mapstructure:"max_pending"`
	// Queue is the execution queue the component is served from ("" = its name).
	Queue string `mapstructure:"queue"`
}

// Retention is [retention], and a component's retention.* override.
type Retention struct {
	// FinishedAfter: a top-level execution whose whole tree finished longer ago than
	// this is deleted with its tree (nil: kept, or for a component the [retention] one).
	FinishedAfter *time.Duration `mapstructure:"finished_after"`
}

// RetryBudget is an activity's retry_budget table: with max_failure_share set, retries
// are held or skipped while more than that share of the function's recent attempts
// failed (actors.RetryBudget).
type RetryBudget struct {
	MaxFailureShare *float64       `mapstructure:"max_failure_share"`
	Window          *time.Duration `mapstructure:"window"`
	MinAttempts     *int           `mapstructure:"min_attempts"`
	Action          string         `mapstructure:"action"`
}

// Defaults of a retry_budget table's keys other than max_failure_share.
const (
	DefaultRetryBudgetWindow      = time.Minute
	DefaultRetryBudgetMinAttempts = 20
	DefaultRetryBudgetAction      = actors.RetryBudgetWait
)

// resolve returns the budget, nil if the table is absent.
func (b *RetryBudget) resolve() (*actors.RetryBudget, error) {
	if b == nil {
		return nil, nil
	}
	if b.MaxFailureShare == nil {
		return nil, errors.New("retry_budget: max_failure_share is required (e.g. 0.5: retries are held while more than half of the recent attempts failed)")
	}
	r := &actors.RetryBudget{MaxFailureShare: *b.MaxFailureShare, Window: DefaultRetryBudgetWindow, MinAttempts: DefaultRetryBudgetMinAttempts, Action: DefaultRetryBudgetAction}
	if b.Window != nil {
		r.Window = *b.Window
	}
	if b.MinAttempts != nil {
		r.MinAttempts = *b.MinAttempts
	}
	if b.Action != "" {
		r.Action = actors.RetryBudgetAction(b.Action)
	}
	if err := r.Check(); err != nil {
		return nil, fmt.Errorf("retry_budget.%w", err)
	}
	return r, nil
}

// resolve checks the key and returns the duration (0 if unset).
func (r Retention) resolve(key string) (time.Duration, error) {
	if r.FinishedAfter == nil {
		return 0, nil
	}
	if *r.FinishedAfter <= 0 {
		return 0, fmt.Errorf("%s = %q: must be positive (leave it out to keep finished executions)", key, r.FinishedAfter.String())
	}
	return *r.FinishedAfter, nil
}

// ActivityExec configures an activity's executor: Exec and what only activities have.
type ActivityExec struct {
	Exec `mapstructure:",squash"`
	// KeepAlive renews the lock of a running attempt (exec.keepalive).
	KeepAlive bool `mapstructure:"keepalive"`
	// MaxDuration bounds an attempt, kept alive or not (exec.max_duration).
	MaxDuration *time.Duration `mapstructure:"max_duration"`
	// CacheTTL serves an ok result to later executions with the same parameters for
	// this long (exec.cache_ttl; actors.ComponentConfig.CacheTTL).
	CacheTTL *time.Duration `mapstructure:"cache_ttl"`
}

// Activity is one [[activity_wasm]].
type Activity struct {
	Name            string         `mapstructure:"name"`
	Location        Location       `mapstructure:"location"`
	MaxRetries      *uint32        `mapstructure:"max_retries"`
	RetryExpBackoff *time.Duration `mapstructure:"retry_exp_backoff"`
	RetryJitter     float64        `mapstructure:"retry_jitter"`
	RetryBudget     *RetryBudget   `mapstructure:"retry_budget"`
	Exec            ActivityExec   `mapstructure:"exec"`
	AllowedHosts    []string       `mapstructure:"allowed_hosts"`
	DeniedHosts     []string       `mapstructure:"denied_hosts"`
	MemoryLimit     string         `mapstructure:"memory_limit"`
	Retention       Retention      `mapstructure:"retention"`
	Output          `mapstructure:",squash"`
	// RequiredLabels: the executions run only on executors whose labels include them
	// (server.labels, or an external worker's).
	RequiredLabels []string `mapstructure:"required_labels"`
}

// Workflow is one [[workflow]].
type Workflow struct {
	Name     string   `mapstructure:"name"`
	Location Location `mapstructure:"location"`
	// MaxRetries bounds the retries after a timeout (workflows are retried on timeouts
	// only); past it the execution finishes as timed_out.
	MaxRetries       *uint32        `mapstructure:"max_retries"`
	RetryExpBackoff  *time.Duration `mapstructure:"retry_exp_backoff"`
	RetryJitter      float64        `mapstructure:"retry_jitter"`
	Exec             Exec           `mapstructure:"exec"`
	BlockingStrategy string         `mapstructure:"blocking_strategy"`
	MemoryLimit      string         `mapstructure:"memory_limit"`
	Retention        Retention      `mapstructure:"retention"`
	Output           `mapstructure:",squash"`
	// Requires routes the workflow's imports: "auto" (nil) or a list of component names
	// (see parseRequires).
	Requires any `mapstructure:"requires"`
}

// parseRequires reads a workflow's or webhook endpoint's requires: "auto" (or absent),
// nil: each import goes to the one deployed component exporting it; a list of
// component names: each import goes to the one of them exporting it.
func parseRequires(v any) ([]string, error) {
	switch r := v.(type) {
	case nil:
		return nil, nil
	case string:
		if r == "auto" {
			return nil, nil
		}
	case []any:
		names := []string{}
		for _, x := range r {
			name, ok := x.(string)
			if !ok || checkName(name) != nil {
				return nil, fmt.Errorf("requires: %v is not a component name", tomlValue(x))
			}
			names = append(names, name)
		}
		return names, nil
	case []string:
		return r, nil
	}
	return nil, fmt.Errorf("requires = %s: want \"auto\" or a list of component names, e.g. [\"fibo\"]", tomlValue(v))
}

// Stub is one [[activity_stub]]: a component with WIT only, whose executions are never
// run (their results are written by `obelisk client execution stub` or the API). Its WIT
// is either a .wasm file carrying it (location.path) or given inline (wit).
type Stub struct {
	Name     string   `mapstructure:"name"`
	Location Location `mapstructure:"location"`
	WIT      string   `mapstructure:"wit"`
	// RequiredLabels, MaxRetries and RetryExpBackoff apply to the executions external
	// workers do: the labels a worker needs, and the retries of a failure or of a lock
	// that expired.
	RequiredLabels  []string       `mapstructure:"required_labels"`
	MaxRetries      *uint32        `mapstructure:"max_retries"`
	RetryExpBackoff *time.Duration `mapstructure:"retry_exp_backoff"`
}

// Server is the resolved configuration of `obelisk server run`.
type Server struct {
	ListeningAddr string
	// MaxRequestBytes bounds an API request's body (api.max_request_bytes).
	MaxRequestBytes int
	WebUIAddr       string // "" = no web UI
	Engine          actors.Config
	Webhooks        webhook.Config // the HTTP side of webhook endpoints (their components are in Engine)

	// GoMemoryLimit is the soft limit of the Go runtime's memory the server sets
	// (debug.SetMemoryLimit) unless GOMEMLIMIT is set; 0 = none (server.go_memory_limit).
	GoMemoryLimit int64

	// The Host names the API and the web UI answer to (api.allowed_hosts,
	// webui.allowed_hosts).
	APIAllowedHosts   hostguard.Allowed
	WebUIAllowedHosts hostguard.Allowed

	// APITokens are the bearer tokens of the API (api.auth_tokens_file); nil: none
	// needed. MetricsAuth: /metrics needs one too (api.metrics_auth).
	APITokens   *auth.Tokens
	MetricsAuth bool
	// APITLS and WebUITLS serve the API and the web UI over TLS (tls_cert_file,
	// tls_key_file); nil: plain HTTP.
	APITLS, WebUITLS *tls.Config

	// OCI are the components whose location is an OCI reference: their Engine.Components
	// entry has no Path until the reference is resolved and pulled into the component
	// store (oci.Resolver), which the server does before the engine starts.
	OCI []oci.Location
	// OCIPlainHTTP lists the registries reached over plain HTTP (oci.plain_http).
	OCIPlainHTTP []string
	// Tracing configures the tracer the server starts for the engine ([tracing]); nil:
	// tracing is off.
	Tracing *tracing.Config
	// Cluster makes the server a node of a cluster on a replicated store ([cluster]);
	// nil: a single node on Pebble.
	Cluster *Cluster
}

// Load reads the TOML file at path ("" = no file: defaults only), applies environment
// overrides (OBELISK_DATA_DIR, OBELISK_API_LISTENING_ADDR, ...: OBELISK_ + key with '.'
// replaced by '_') and validates it. Relative paths are relative to the file's folder;
// data_dir relative to the working directory.
func Load(path string) (*Server, error) {
	v := viper.New()
	v.SetDefault("data_dir", DefaultDataDir)
	v.SetDefault("cache_dir", "")
	v.SetDefault("api.listening_addr", DefaultListeningAddr)
	v.SetDefault("api.max_request_bytes", api.DefaultMaxRequestBytes)
	v.SetDefault("api.max_params_bytes", actors.DefaultMaxParamsBytes)
	v.SetDefault("webui.listening_addr", DefaultWebUIAddr)
	v.SetDefault("api.allowed_hosts", []string{}) // known to viper, so the environment can set it
	v.SetDefault("webui.allowed_hosts", []string{})
	v.SetDefault("api.auth_tokens_file", "")
	v.SetDefault("api.metrics_auth", false)
	for _, section := range []string{"api", "webui"} {
		v.SetDefault(section+".tls_cert_file", "")
		v.SetDefault(section+".tls_key_file", "")
	}
	v.SetDefault("workflows.max_resident", DefaultMaxResident)
	v.SetDefault("workflows.snapshot_every", actors.DefaultSnapshotEvery)
	v.SetDefault("logs.max_per_execution", events.DefaultMaxLogsPerExecution)
	v.SetDefault("wasm.workflow_snapshots", true)
	v.SetDefault("wasm.activity_snapshots", true)
	v.SetDefault("wasm.instance_reuse", true)
	v.SetDefault("wasm.memory_budget", "")
	v.SetDefault("store.cache_size", "")
	v.SetDefault("store.memtable_size", "")
	v.SetDefault("server.go_memory_limit", "")
	v.SetDefault("oci.plain_http", []string{})
	v.SetDefault("tracing.enabled", false)
	v.SetDefault("tracing.endpoint", DefaultTracingEndpoint)
	v.SetDefault("tracing.service_name", DefaultTracingServiceName)
	v.SetDefault("tracing.sample_ratio", 1.0)
	v.SetEnvPrefix("OBELISK")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	baseDir := "."
	if path != "" {
		v.SetConfigFile(path)
		v.SetConfigType("toml")
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("read config %s: %w", path, err)
		}
		baseDir = filepath.Dir(path)
	}
	var f File
	if err := v.Unmarshal(&f, decodeHooks(), func(c *mapstructure.DecoderConfig) { c.ErrorUnused = true }); err != nil {
		if msg, ok := keyErrors(v, err); ok {
			return nil, fmt.Errorf("config %s: %s", displayPath(path), msg)
		}
		return nil, fmt.Errorf("config %s: %w", displayPath(path), err)
	}
	return resolve(&f, baseDir, path)
}

func displayPath(p string) string {
	if p == "" {
		return "(defaults)"
	}
	return p
}

func resolve(f *File, baseDir, path string) (*Server, error) {
	s := &Server{ListeningAddr: f.API.ListeningAddr, MaxRequestBytes: f.API.MaxRequestBytes}
	if f.API.MaxRequestBytes <= 0 {
		return nil, fmt.Errorf("config %s: api.max_request_bytes must be a positive number of bytes, got %d", displayPath(path), f.API.MaxRequestBytes)
	}
	if f.API.MaxParamsBytes <= 0 {
		return nil, fmt.Errorf("config %s: api.max_params_bytes must be a positive number of bytes, got %d", displayPath(path), f.API.MaxParamsBytes)
	}
	s.Engine.MaxParamsBytes = f.API.MaxParamsBytes
	s.Engine.MaxPending = f.Server.MaxPending // not negative: countHook
	if a := strings.TrimSpace(f.WebUI.ListeningAddr); a != "off" {
		s.WebUIAddr = a
	}
	var err error
	if s.APIAllowedHosts, err = hostguard.Parse("api.allowed_hosts", f.API.AllowedHosts); err != nil {
		return nil, fmt.Errorf("config %s: %w", displayPath(path), err)
	}
	if s.WebUIAllowedHosts, err = hostguard.Parse("webui.allowed_hosts", f.WebUI.AllowedHosts); err != nil {
		return nil, fmt.Errorf("config %s: %w", displayPath(path), err)
	}
	s.Engine.DataDir = f.DataDir
	s.OCIPlainHTTP = f.OCI.PlainHTTP
	if s.Tracing, err = resolveTracing(f); err != nil {
		return nil, fmt.Errorf("config %s: %w", displayPath(path), err)
	}
	s.Engine.CacheDir = f.CacheDir
	if s.Cluster, err = resolveCluster(f.Cluster, f.DataDir); err != nil {
		return nil, fmt.Errorf("config %s: %w", displayPath(path), err)
	}
	if s.Cluster != nil {
		s.Engine.NodeName = s.Cluster.NodeName
	}
	s.Engine.DisableWorkflowSnapshots = !f.Wasm.WorkflowSnapshots
	s.Engine.DisableActivitySnapshots = !f.Wasm.ActivitySnapshots
	s.Engine.DisableInstanceReuse = !f.Wasm.InstanceReuse
	budget, err := parseSize(f.Wasm.MemoryBudget)
	if err != nil {
		return nil, fmt.Errorf("config %s: wasm.memory_budget: %w", displayPath(path), err)
	}
	s.Engine.MemoryBudget = budget
	if s.Engine.StoreCacheSize, err = parseStoreSize("store.cache_size", f.Store.CacheSize, MinStoreCacheSize, 0); err != nil {
		return nil, fmt.Errorf("config %s: %w", displayPath(path), err)
	}
	if s.Engine.StoreMemTableSize, err = parseStoreSize("store.memtable_size", f.Store.MemTableSize, MinStoreMemTableSize, maxStoreMemTableSize); err != nil {
		return nil, fmt.Errorf("config %s: %w", displayPath(path), err)
	}
	if s.GoMemoryLimit, err = parseGoMemoryLimit(f.Server.GoMemoryLimit); err != nil {
		return nil, fmt.Errorf("config %s: %w", displayPath(path), err)
	}
	if s.Engine.RetentionFinishedAfter, err = f.Retention.resolve("retention.finished_after"); err != nil {
		return nil, fmt.Errorf("config %s: %w", displayPath(path), err)
	}
	if err := checkLabels("server.labels", f.Server.Labels); err != nil {
		return nil, fmt.Errorf("config %s: %w", displayPath(path), err)
	}
	s.Engine.Labels = f.Server.Labels
	s.Engine.MaxLogsPerExecution = f.Logs.MaxPerExecution // not negative: countHook
	if s.Engine.MaxLogsPerExecution == 0 {
		s.Engine.MaxLogsPerExecution = -1 // none
	}
	switch r := f.Workflows.MaxResident; { // not negative: countHook
	case r == 0:
		s.Engine.MaxResidentWorkflows = -1 // none: every wait interrupts and replays
	default:
		s.Engine.MaxResidentWorkflows = r
	}
	s.Engine.SnapshotEvery = f.Workflows.SnapshotEvery // not negative: countHook
	if s.Engine.SnapshotEvery == 0 {
		s.Engine.SnapshotEvery = -1 // never
	}
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(baseDir, p)
	}
	if err := resolveSecurity(f, s, rel, path); err != nil {
		return nil, err
	}
	fail := func(section string, i int, name, msg string, args ...any) error {
		return fmt.Errorf("config %s: [[%s]] #%d (name %q): %s", displayPath(path), section, i+1, name, fmt.Sprintf(msg, args...))
	}
	for i, a := range f.Activities {
		c := actors.ComponentConfig{
			Name: a.Name, Type: actors.ActivityWasm, Path: rel(a.Location.Path), MaxRetries: DefaultMaxRetries,
			RetryExpBackoff: DefaultRetryExpBackoff, LockExpiry: DefaultLockExpiry, AllowedHosts: a.AllowedHosts,
			DeniedHosts: a.DeniedHosts, MaxConcurrency: DefaultMaxConcurrency,
		}
		if a.MaxRetries != nil {
			c.MaxRetries = *a.MaxRetries
		}
		if a.RetryExpBackoff != nil {
			c.RetryExpBackoff = *a.RetryExpBackoff
		}
		c.RetryJitter = a.RetryJitter
		if c.RetryBudget, err = a.RetryBudget.resolve(); err != nil {
			return nil, fail("activity_wasm", i, a.Name, "%v", err)
		}
		if err := s.location(c.Name, a.Location); err != nil {
			return nil, fail("activity_wasm", i, a.Name, "%v", err)
		}
		if err := common(&c, a.Exec.Exec); err != nil {
			return nil, fail("activity_wasm", i, a.Name, "%v", err)
		}
		if err := activityExec(&c, a.Exec); err != nil {
			return nil, fail("activity_wasm", i, a.Name, "%v", err)
		}
		// The parser the engine uses: a bad entry is found here, naming its key and
		// the entry, rather than when the engine starts.
		if err := (&wasmhost.HTTPPolicy{AllowedHosts: a.AllowedHosts, DeniedHosts: a.DeniedHosts}).Validate(); err != nil {
			return nil, fail("activity_wasm", i, a.Name, "%v", err)
		}
		if c.MemoryLimit, err = parseMemoryLimit(a.MemoryLimit); err != nil {
			return nil, fail("activity_wasm", i, a.Name, "%v", err)
		}
		if err := a.Output.apply(&c); err != nil {
			return nil, fail("activity_wasm", i, a.Name, "%v", err)
		}
		if c.RetentionFinishedAfter, err = a.Retention.resolve("retention.finished_after"); err != nil {
			return nil, fail("activity_wasm", i, a.Name, "%v", err)
		}
		if err := checkLabels("required_labels", a.RequiredLabels); err != nil {
			return nil, fail("activity_wasm", i, a.Name, "%v", err)
		}
		c.RequiredLabels = a.RequiredLabels
		s.Engine.Components = append(s.Engine.Components, c)
	}
	for i, w := range f.Workflow {
		c := actors.ComponentConfig{
			Name: w.Name, Type: actors.Workflow, Path: rel(w.Location.Path), RetryExpBackoff: DefaultRetryExpBackoff,
			LockExpiry: DefaultLockExpiry, MaxConcurrency: DefaultMaxResident, BlockingStrategy: actors.Await,
			MaxRetries: DefaultMaxRetries,
		}
		if w.MaxRetries != nil {
			c.MaxRetries = *w.MaxRetries
		}
		if w.RetryExpBackoff != nil {
			c.RetryExpBackoff = *w.RetryExpBackoff
		}
		c.RetryJitter = w.RetryJitter
		switch w.BlockingStrategy {
		case "", "await":
		case "interrupt":
			c.BlockingStrategy = actors.Interrupt
		default:
			return nil, fail("workflow", i, w.Name, "blocking_strategy %q: want \"await\" or \"interrupt\"", w.BlockingStrategy)
		}
		if err := s.location(c.Name, w.Location); err != nil {
			return nil, fail("workflow", i, w.Name, "%v", err)
		}
		if err := common(&c, w.Exec); err != nil {
			return nil, fail("workflow", i, w.Name, "%v", err)
		}
		if c.MemoryLimit, err = parseMemoryLimit(w.MemoryLimit); err != nil {
			return nil, fail("workflow", i, w.Name, "%v", err)
		}
		if err := w.Output.apply(&c); err != nil {
			return nil, fail("workflow", i, w.Name, "%v", err)
		}
		if c.RetentionFinishedAfter, err = w.Retention.resolve("retention.finished_after"); err != nil {
			return nil, fail("workflow", i, w.Name, "%v", err)
		}
		if c.Requires, err = parseRequires(w.Requires); err != nil {
			return nil, fail("workflow", i, w.Name, "%v", err)
		}
		s.Engine.Components = append(s.Engine.Components, c)
	}
	// Before the stubs: the first components are the activities, then the workflows.
	if err := resolveQueues(f, s.Engine.Components, path); err != nil {
		return nil, err
	}
	for i, st := range f.Stubs {
		c := actors.ComponentConfig{Name: st.Name, Type: actors.ActivityStub, Path: rel(st.Location.Path), WIT: st.WIT,
			MaxRetries: DefaultMaxRetries, RetryExpBackoff: DefaultRetryExpBackoff, RequiredLabels: st.RequiredLabels}
		if err := checkName(c.Name); err != nil {
			return nil, fail("activity_stub", i, st.Name, "%v", err)
		}
		if st.MaxRetries != nil {
			c.MaxRetries = *st.MaxRetries
		}
		if st.RetryExpBackoff != nil {
			c.RetryExpBackoff = *st.RetryExpBackoff
		}
		if err := checkLabels("required_labels", st.RequiredLabels); err != nil {
			return nil, fail("activity_stub", i, st.Name, "%v", err)
		}
		switch hasLocation := st.Location.Path != "" || st.Location.OCI != ""; {
		case st.WIT != "" && strings.TrimSpace(st.WIT) == "":
			return nil, fail("activity_stub", i, st.Name, "wit is empty")
		case hasLocation && st.WIT != "":
			return nil, fail("activity_stub", i, st.Name, "give either a location (location.path or location.oci) or wit, not both")
		case !hasLocation && st.WIT == "":
			return nil, fail("activity_stub", i, st.Name, "location.path (a .wasm carrying the WIT), location.oci (an OCI reference to one) or wit (inline WIT) is required")
		case hasLocation:
			if err := s.location(c.Name, st.Location); err != nil {
				return nil, fail("activity_stub", i, st.Name, "%v", err)
			}
		}
		s.Engine.Components = append(s.Engine.Components, c)
	}
	if err := resolveWebhooks(f, s, rel, path); err != nil {
		return nil, err
	}
	if err := resolveTriggers(f, s, rel, path); err != nil {
		return nil, err
	}
	if err := resolveSchedules(f, s, path); err != nil {
		return nil, err
	}
	for i, kv := range f.KVConfig {
		switch {
		case kv.Bucket == "":
			return nil, fmt.Errorf("config %s: kv_config[%d]: bucket is required", displayPath(path), i)
		case kv.Location.OCI != "":
			return nil, fmt.Errorf("config %s: kv_config[%d] (bucket %q): location.oci is for components: a bucket is read from a TOML file (location.path)", displayPath(path), i, kv.Bucket)
		case kv.Location.Path == "":
			return nil, fmt.Errorf("config %s: kv_config[%d] (bucket %q): location.path (a TOML file) is required", displayPath(path), i, kv.Bucket)
		}
		s.Engine.KVConfig = append(s.Engine.KVConfig, actors.KVConfigBucket{Bucket: kv.Bucket, Path: rel(kv.Location.Path)})
	}
	return s, nil
}

// location checks a component's location, exactly one of location.path (taken as it is
// by the caller) and location.oci, and records an OCI one in s.OCI.
func (s *Server) location(name string, l Location) error {
	switch {
	case l.Path != "" && l.OCI != "":
		return fmt.Errorf("give location.path or location.oci, not both")
	case l.Path == "" && l.OCI == "":
		return fmt.Errorf("location.path (a .wasm file) or location.oci (an OCI reference, REGISTRY/REPOSITORY:TAG) is required")
	case l.OCI != "":
		if _, err := oci.ParseReference(l.OCI); err != nil {
			return fmt.Errorf("location.oci: %w", err)
		}
		s.OCI = append(s.OCI, oci.Location{Component: name, Reference: l.OCI})
	}
	return nil
}

// checkLabels checks the labels of key (server.labels, required_labels): each a name
// as checkName wants one, none twice.
func checkLabels(key string, labels []string) error {
	for i, l := range labels {
		if err := checkName(l); err != nil {
			return fmt.Errorf("%s[%d] = %q: a label is a name: %w", key, i, l, err)
		}
		if slices.Contains(labels[:i], l) {
			return fmt.Errorf("%s: label %q is given twice", key, l)
		}
	}
	return nil
}

func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("name is required")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return fmt.Errorf("name may contain only letters, digits, '_', '-' and '.'")
		}
	}
	return nil
}

func common(c *actors.ComponentConfig, e Exec) error {
	if err := checkName(c.Name); err != nil {
		return err
	}
	if e.LockExpiry != nil {
		c.LockExpiry = *e.LockExpiry
	}
	if err := atLeast("exec.lock_expiry", c.LockExpiry, MinLockExpiry); err != nil {
		return err
	}
	if err := atLeast("retry_exp_backoff", c.RetryExpBackoff, MinRetryExpBackoff); err != nil {
		return err
	}
	if !(c.RetryJitter >= 0 && c.RetryJitter <= 1) {
		return fmt.Errorf("retry_jitter = %v: must be a fraction from 0 to 1 (0.2 scales each retry's delay by 0.8 to 1.2)", c.RetryJitter)
	}
	c.Queue = e.Queue
	if e.MaxConcurrency != nil {
		// 0 is refused rather than read as "the default": a component that may run
		// nothing at once is never what was meant.
		if *e.MaxConcurrency == 0 {
			return fmt.Errorf("exec.max_concurrency = 0: must be at least 1 (leave it out for the default, %d)", c.MaxConcurrency)
		}
		c.MaxConcurrency = *e.MaxConcurrency
	}
	return nil
}

// activityExec applies exec.keepalive and exec.max_duration. Without keepalive the lock
// expiry already ends an attempt, so a max_duration that is not shorter would never act:
// it is refused as the mistake it must be.
func activityExec(c *actors.ComponentConfig, e ActivityExec) error {
	c.KeepAlive = e.KeepAlive
	if e.CacheTTL != nil {
		if *e.CacheTTL <= 0 {
			return fmt.Errorf("exec.cache_ttl = %q: must be positive (leave it out for no cache)", e.CacheTTL.String())
		}
		c.CacheTTL = *e.CacheTTL
	}
	if e.MaxDuration == nil {
		return nil
	}
	c.MaxDuration = *e.MaxDuration
	if err := atLeast("exec.max_duration", c.MaxDuration, MinMaxDuration); err != nil {
		return err
	}
	if !c.KeepAlive && c.MaxDuration >= c.LockExpiry {
		return fmt.Errorf("exec.max_duration = %q is not shorter than exec.lock_expiry = %q: without exec.keepalive = true the lock expiry ends an attempt first", c.MaxDuration.String(), c.LockExpiry.String())
	}
	return nil
}

// atLeast checks a duration key against its lower bound.
func atLeast(key string, d, lowest time.Duration) error {
	if d < lowest {
		return fmt.Errorf("%s = %q: must be at least %v", key, d.String(), lowest)
	}
	return nil
}

// parseSize reads a size such as "256MiB", "2GiB", "512KiB" or "1048576B"; "" is 0 (the
// default). A bare number is refused: bytes or wasm pages would both be plausible.
func parseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, nil
	}
	units := []struct {
		suffix string
		shift  uint
	}{{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"B", 0}}
	for _, u := range units {
		num, ok := strings.CutSuffix(t, u.suffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(num), 10, 64)
		if err != nil || n == 0 || n > (1<<63)>>u.shift {
			return 0, fmt.Errorf("%q: want a positive whole number of KiB, MiB, GiB or B, e.g. \"256MiB\"", s)
		}
		return n << u.shift, nil
	}
	return 0, fmt.Errorf("%q: give a unit (KiB, MiB, GiB or B), e.g. \"256MiB\"", s)
}

// parseStoreSize reads a size of [store] ("" is 0: the store's default) and checks it
// against its bounds (highest 0: none).
func parseStoreSize(key, s string, lowest, highest uint64) (int64, error) {
	n, err := parseSize(s)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%s: %w", key, err)
	case n == 0:
		return 0, nil
	case n < lowest:
		return 0, fmt.Errorf("%s = %q: must be at least %dMiB", key, s, lowest>>20)
	case highest > 0 && n > highest:
		return 0, fmt.Errorf("%s = %q: must be less than 4GiB", key, s)
	case n > math.MaxInt64:
		return 0, fmt.Errorf("%s = %q: too large", key, s)
	}
	return int64(n), nil
}

// parseGoMemoryLimit reads server.go_memory_limit: "" is DefaultGoMemoryLimit, "off" is
// 0 (none).
func parseGoMemoryLimit(s string) (int64, error) {
	const key = "server.go_memory_limit"
	switch strings.TrimSpace(s) {
	case "":
		return DefaultGoMemoryLimit, nil
	case "off":
		return 0, nil
	}
	n, err := parseSize(s)
	switch {
	case err != nil:
		return 0, fmt.Errorf("%s: %w, or \"off\"", key, err)
	case n < MinGoMemoryLimit:
		return 0, fmt.Errorf("%s = %q: must be at least %dMiB (below, the server would spend its time collecting garbage), or \"off\"", key, s, MinGoMemoryLimit>>20)
	case n > math.MaxInt64:
		return 0, fmt.Errorf("%s = %q: too large", key, s)
	}
	return int64(n), nil
}

// parseMemoryLimit reads a component's memory_limit: a size that is a whole number of
// wasm pages (64 KiB), at most 4 GiB.
func parseMemoryLimit(s string) (uint64, error) {
	n, err := parseSize(s)
	switch {
	case err != nil:
		return 0, fmt.Errorf("memory_limit %w", err)
	case n%(64<<10) != 0:
		return 0, fmt.Errorf("memory_limit %q is not a multiple of 64KiB (a wasm page)", s)
	case n > 4<<30:
		return 0, fmt.Errorf("memory_limit %q is over 4GiB, what a wasm32 memory can address", s)
	}
	return n, nil
}

// resolveTracing checks [tracing]; nil when it is off.
func resolveTracing(f *File) (*tracing.Config, error) {
	t := f.Tracing
	if !t.Enabled {
		return nil, nil
	}
	if u, err := url.Parse(t.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tracing.endpoint %q must be an http or https URL, e.g. %q", t.Endpoint, DefaultTracingEndpoint)
	}
	if t.SampleRatio < 0 || t.SampleRatio > 1 || math.IsNaN(t.SampleRatio) {
		return nil, fmt.Errorf("tracing.sample_ratio must be between 0 and 1, got %v", t.SampleRatio)
	}
	if strings.TrimSpace(t.ServiceName) == "" {
		return nil, fmt.Errorf("tracing.service_name must not be empty")
	}
	return &tracing.Config{Endpoint: t.Endpoint, ServiceName: t.ServiceName, SampleRatio: t.SampleRatio}, nil
}
