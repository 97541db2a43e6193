package actors

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/wasmhost"
	"github.com/obelisk-go/obelisk/wasmhost/wit"
)

// ComponentType is the kind of a deployed component.
type ComponentType string

// The component types of this engine.
const (
	ActivityWasm ComponentType = "activity_wasm"
	Workflow     ComponentType = "workflow"
	// ActivityStub executions are never run: their results are written by a workflow's
	// stub call, the CLI or the API.
	ActivityStub ComponentType = "activity_stub"
	// WebhookEndpoint components export nothing: each HTTP request runs in a fresh
	// instance (see RunWebhook); they may call and schedule what their world imports.
	WebhookEndpoint ComponentType = "webhook_endpoint"
	// ActivityNative components are built into the engine (no WASM) and run like
	// activities: the KV component (runner_kv.go).
	ActivityNative ComponentType = "activity_native"
	// Trigger components export nothing: one instance runs for as long as it wants,
	// started with the engine and restarted after a backoff when it ends (trigger.go);
	// they may call and schedule what their world imports, as webhook endpoints do.
	Trigger ComponentType = "trigger"
)

// BlockingStrategy says what a workflow run does while it waits for a child.
type BlockingStrategy string

const (
	// Await keeps the instance in memory, blocked in the host call, until the response
	// arrives or its lease ends; the number of resident instances is bounded.
	Await BlockingStrategy = "await"
	// Interrupt drops the instance; the workflow is replayed when the response arrives.
	Interrupt BlockingStrategy = "interrupt"
)

// ComponentConfig describes one deployed component.
type ComponentConfig struct {
	Name string
	Type ComponentType
	// Path of the .wasm file. An activity stub needs only its WIT: a .wasm file carrying
	// it, or the WIT text itself in WIT.
	Path string
	// WIT is an activity stub's WIT, given inline instead of a file, or a native
	// component's.
	WIT string
	// MaxRetries is how many times an execution is retried after its first attempt: an
	// activity after a failure or a timeout, a workflow after a timeout only (a trap or
	// a nondeterminism finishes it). Past it, it finishes as failed or timed out.
	MaxRetries uint32
	// RetryExpBackoff is the first retry's delay; each further one doubles it.
	RetryExpBackoff time.Duration
	// LockExpiry bounds one run: an activity still running then is killed and the attempt
	// counts as timed out; a workflow's lock is extended while it makes host calls, and
	// so is an activity's while it runs when KeepAlive is set.
	LockExpiry time.Duration
	// KeepAlive (activities): the lock of a running attempt is renewed every
	// LockExpiry/3, so LockExpiry is how long a dead node's attempt goes unnoticed, not
	// the attempt's budget (see service_keepalives.go).
	KeepAlive bool
	// MaxDuration (activities), if positive, bounds an attempt whether it is kept alive
	// or not: past it the attempt is killed and counts as timed out.
	MaxDuration time.Duration
	// AllowedHosts and DeniedHosts are the destinations an activity or a webhook
	// endpoint may and may not reach over HTTP (entries, see wasmhost.HTTPPolicy).
	AllowedHosts, DeniedHosts []string
	// Queue is the queue the component's executor serves, and where its executions are
	// submitted unless the submitter names another; "" means the component's name.
	// Components may share a queue: its executor then runs them all, within one bound.
	Queue string
	// MaxConcurrency bounds the runs executing at once in the component's queue; the
	// components sharing a queue must give the same value (see checkQueues).
	MaxConcurrency int
	// BlockingStrategy applies to workflows.
	BlockingStrategy BlockingStrategy
	// MemoryLimit caps the linear memory of each instance, in bytes (a multiple of 64
	// KiB); 0 means DefaultMemoryLimit. An activity attempt reserves it from the
	// engine's MemoryBudget while it runs (see run_memory.go).
	MemoryLimit uint64
	// RetentionFinishedAfter overrides Config.RetentionFinishedAfter for the trees whose
	// top-level execution runs this component (0: the engine's).
	RetentionFinishedAfter time.Duration
	// CaptureStdout and CaptureStderr make the lines the guest writes to standard output
	// and error log lines of the execution (wasmhost.RunInput).
	CaptureStdout, CaptureStderr bool
	// RestartBackoff and RestartBackoffMax (triggers): the delay before the first
	// restart of a trigger whose run ended, doubled at each further one up to the
	// max; a run that lasted RestartBackoffMax or longer starts the doubling afresh.
	// 0 means DefaultTriggerBackoff, DefaultTriggerBackoffMax.
	RestartBackoff, RestartBackoffMax time.Duration
}

// QueueName returns the component's queue: Queue, or its name.
func (c *ComponentConfig) QueueName() string {
	if c.Queue != "" {
		return c.Queue
	}
	return c.Name
}

// retryConfig is the retry policy captured in the component's Locked events, so that a
// config change never rewrites what a stream recorded.
func (c *ComponentConfig) retryConfig() *pb.RetryConfig {
	return &pb.RetryConfig{MaxRetries: c.MaxRetries, RetryExpBackoff: int64(c.RetryExpBackoff)}
}

func (c *ComponentConfig) pbType() pb.ComponentType {
	switch c.Type {
	case Workflow:
		return pb.ComponentType_COMPONENT_TYPE_WORKFLOW
	case ActivityStub:
		return pb.ComponentType_COMPONENT_TYPE_ACTIVITY_STUB
	case WebhookEndpoint:
		return pb.ComponentType_COMPONENT_TYPE_WEBHOOK_ENDPOINT
	case ActivityNative:
		return pb.ComponentType_COMPONENT_TYPE_ACTIVITY_NATIVE
	}
	return pb.ComponentType_COMPONENT_TYPE_ACTIVITY_WASM
}

// Component is a loaded, compiled component.
type Component struct {
	Config ComponentConfig
	// ID is <type>:<name>:sha256:<hex of the file>.
	ID      string
	WIT     *wit.Resolve
	Exports []*wit.Function
	Imports []*wit.Function
	imports map[string]bool // FFQNs a workflow may call or submit (see mayCall)
	exports map[string]bool
	module  *wasmhost.Module // nil for an activity stub
	// http sends the outgoing HTTP of an activity's or a webhook endpoint's instances,
	// one for all of them so that connections are reused.
	http *wasmhost.Outbound
	// lastSize is the memory (bytes) its last instance held when it was made, lastPeak
	// the most the last run that ended held (or half the one before, if more): what the
	// next run reserves before it is locked (run_memory.go).
	lastSize, lastPeak atomic.Uint64

	// WITFiles is the component's WIT folder, as embedded in its .wasm (or given inline).
	WITFiles []wit.File
}

// memoryEstimate is the guest memory a run of the component reserves before its
// instance is made: the most the last runs held (lastPeak), at least what the last
// instance held when it was made, or the module's declared minimum before there was one
// (0 for a component without a module: a stub, or one made by a test).
func (c *Component) memoryEstimate() uint64 {
	if n := max(c.lastPeak.Load(), c.lastSize.Load()); n > 0 || c.module == nil {
		return n
	}
	return c.module.MemoryMin()
}

// mayCall reports whether a workflow of this component may call or submit ffqn: its
// world imports it, directly or through the -obelisk-ext extension package, it is a
// built-in component's (the KV store's), or the component exports it itself (a
// workflow may recurse, as testing:tree does).
func (c *Component) mayCall(ffqn string) bool {
	return c.imports[ffqn] || c.exports[ffqn]
}

// Function describes one function the engine can run.
type Function struct {
	Component *Component
	Fn        *wit.Function
}

// registry maps exported FFQNs to the components that run them.
type registry struct {
	components []*Component
	byFFQN     map[string]Function
}

func loadComponents(ctx context.Context, rt *wasmhost.Runtime, cfgs []ComponentConfig) (*registry, error) {
	reg := &registry{byFFQN: map[string]Function{}}
	type loaded struct {
		c   *Component
		err error
	}
	// Up to GOMAXPROCS at once. Compile spreads the code generation of one module over
	// every core, but not the rest (reading the file and the WIT, rewriting the module,
	// loading compiled code from the cache), which is most of a start from a warm cache.
	// The peak memory grows with the modules compiled at once (a Go guest takes hundreds
	// of MiB while it compiles): hence no more than the cores.
	// After a failure no later component is started (its error could not be the one
	// reported); the earlier ones all run, so the error is the same whatever the timing.
	results := make([]loaded, len(cfgs))
	workers := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	var failed atomic.Bool
	for i := range cfgs {
		workers <- struct{}{}
		if failed.Load() {
			<-workers
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-workers; wg.Done() }()
			c, err := loadComponent(ctx, rt, cfgs[i])
			results[i] = loaded{c, err}
			if err != nil {
				failed.Store(true)
			}
		}()
	}
	wg.Wait()
	names := map[string]bool{}
	for i, r := range results {
		if r.err != nil { // the first in the config's order, whichever failed first
			return nil, r.err
		}
		if names[cfgs[i].Name] {
			return nil, fmt.Errorf("component %q: the name is used twice", cfgs[i].Name)
		}
		names[cfgs[i].Name] = true
		reg.components = append(reg.components, r.c)
		for _, fn := range r.c.Exports {
			ffqn := fn.FFQN()
			if other, ok := reg.byFFQN[ffqn]; ok {
				return nil, fmt.Errorf("component %q: function %s is already exported by component %q", r.c.Config.Name, ffqn, other.Component.Config.Name)
			}
			reg.byFFQN[ffqn] = Function{Component: r.c, Fn: fn}
		}
	}
	// Every import of a workflow must be served by some component, the extension
	// functions by one of the right kind.
	for _, c := range reg.components {
		for _, fn := range c.Imports {
			ffqn, kind, ext := wit.SplitExtension(fn.FFQN())
			if !ext {
				ffqn = fn.FFQN()
			}
			target, ok := reg.byFFQN[ffqn]
			if !ok {
				return nil, fmt.Errorf("component %q imports %s, which no component exports", c.Config.Name, fn.FFQN())
			}
			isStub := target.Component.Config.Type == ActivityStub
			switch {
			case kind == wit.ExtStub && !isStub:
				return nil, fmt.Errorf("component %q imports %s, but %s is not an activity stub's function", c.Config.Name, fn.FFQN(), ffqn)
			case kind == wit.ExtSchedule && isStub:
				return nil, fmt.Errorf("component %q imports %s: activity stubs cannot be scheduled", c.Config.Name, fn.FFQN())
			case c.Config.Type == WebhookEndpoint && ext && kind != wit.ExtSchedule:
				return nil, fmt.Errorf("webhook endpoint %q imports %s: a webhook endpoint may only call functions and schedule them (-obelisk-schedule), not use join sets or stubs", c.Config.Name, fn.FFQN())
			case c.Config.Type == Trigger && ext && kind != wit.ExtSchedule:
				return nil, fmt.Errorf("trigger %q imports %s: a trigger may only call functions and schedule them (-obelisk-schedule), not use join sets or stubs", c.Config.Name, fn.FFQN())
			}
			c.imports[ffqn] = true
		}
		if c.Config.Type == Workflow || c.Config.Type == WebhookEndpoint || c.Config.Type == Trigger {
			// The built-in components' functions are everyone's, imported or not.
			for ffqn, fn := range reg.byFFQN {
				if fn.Component.Config.Type == ActivityNative {
					c.imports[ffqn] = true
				}
			}
		}
	}
	sort.Slice(reg.components, func(i, j int) bool { return reg.components[i].Config.Name < reg.components[j].Config.Name })
	return reg, nil
}

func loadComponent(ctx context.Context, rt *wasmhost.Runtime, cfg ComponentConfig) (*Component, error) {
	var wasm []byte
	var files []wit.File
	switch {
	case cfg.Type == ActivityStub && cfg.WIT != "":
		if cfg.Path != "" {
			return nil, fmt.Errorf("component %q: give an activity stub's WIT inline or as a file, not both", cfg.Name)
		}
		files = []wit.File{{Path: cfg.Name + ".wit", Text: cfg.WIT}}
		wasm = []byte("activity_stub_inline:" + cfg.WIT) // identifies the component
	case cfg.Type == ActivityNative:
		files = []wit.File{{Path: cfg.Name + ".wit", Text: cfg.WIT}}
		wasm = []byte("activity_native:" + cfg.WIT) // identifies the component: its interface
	default:
		var err error
		if wasm, err = os.ReadFile(cfg.Path); err != nil {
			return nil, fmt.Errorf("component %q: %w", cfg.Name, err)
		}
		if files, err = wit.ExtractFromWasm(wasm); err != nil {
			return nil, fmt.Errorf("component %q (%s): %w", cfg.Name, cfg.Path, err)
		}
	}
	sum := sha256.Sum256(wasm)
	id := fmt.Sprintf("%s:%s:sha256:%s", cfg.Type, cfg.Name, hex.EncodeToString(sum[:]))
	resolve, err := wit.Parse(files)
	if err != nil {
		return nil, fmt.Errorf("component %q: parse WIT: %w", cfg.Name, err)
	}
	exports := resolve.Exports()
	if cfg.Type == WebhookEndpoint && len(exports) > 0 {
		return nil, fmt.Errorf("component %q: a webhook endpoint exports no functions, but its WIT exports %s", cfg.Name, exports[0].FFQN())
	}
	if cfg.Type == Trigger && len(exports) > 0 {
		return nil, fmt.Errorf("component %q: a trigger exports no functions (the host runs %s), but its WIT exports %s", cfg.Name, TriggerFFQN, exports[0].FFQN())
	}
	if len(exports) == 0 && cfg.Type != WebhookEndpoint && cfg.Type != Trigger {
		return nil, fmt.Errorf("component %q: its WIT exports no function", cfg.Name)
	}
	for _, fn := range exports {
		if fn.Result == nil || fn.Result.Underlying().Kind != wit.KindResult {
			return nil, fmt.Errorf("component %q: exported function %s must return a result", cfg.Name, fn.FFQN())
		}
	}
	imports := resolve.Imports()
	switch cfg.Type {
	case Workflow, WebhookEndpoint, Trigger:
	case ActivityWasm:
		// An activity's host calls cannot reach other components: a module that imports
		// functions (a workflow deployed as an activity) would fail every call at run time.
		if len(imports) > 0 {
			return nil, fmt.Errorf("component %q: an activity cannot call other components, but its WIT imports %s (is it a workflow? deploy it as a [[workflow]])", cfg.Name, imports[0].FFQN())
		}
	default:
		imports = nil // an activity stub is never run: nothing it imports is called
	}
	c := &Component{Config: cfg, ID: id, WIT: resolve, WITFiles: files, Exports: exports, Imports: imports, imports: map[string]bool{}, exports: map[string]bool{}}
	for _, fn := range exports {
		c.exports[fn.FFQN()] = true
	}
	if cfg.Type == ActivityStub || cfg.Type == ActivityNative {
		return c, nil
	}
	if cfg.Type == ActivityWasm || cfg.Type == WebhookEndpoint || cfg.Type == Trigger {
		if c.http, err = wasmhost.NewOutbound(wasmhost.HTTPPolicy{AllowedHosts: cfg.AllowedHosts, DeniedHosts: cfg.DeniedHosts}); err != nil {
			return nil, fmt.Errorf("component %q: %w", cfg.Name, err)
		}
	}
	mod, err := rt.Compile(ctx, cfg.Name, wasm, wasmhost.MemoryLimitPages(uint32(cfg.memoryLimit()/wasmPage)))
	if err != nil {
		return nil, fmt.Errorf("component %q: %w", cfg.Name, err)
	}
	c.module = mod
	return c, nil
}
