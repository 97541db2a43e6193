package actors

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/obelisk-go/obelisk/actors/internal/retrybudget"
	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/internal/clip"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/wasmhost"
	"github.com/obelisk-go/obelisk/wasmhost/wit"
	"github.com/obelisk-go/obelisk/wasmstore"
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
	// RetryJitter scales each retry's delay by a factor in [1-RetryJitter,
	// 1+RetryJitter], drawn per execution and retry (retryBackoff), so that executions
	// failing together do not all come back at once. 0 is none; at most 1.
	RetryJitter float64
	// RetryBudget (activities), if set, holds or skips retries while most recent
	// attempts of the function failed (package retrybudget).
	RetryBudget *RetryBudget
	// CacheTTL (activities), if positive: an ok result serves the later executions of
	// the same function with the same parameters on the same component version for this
	// long, which finish with it instead of running (runner_activity.go).
	CacheTTL time.Duration
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
	// MaxPending bounds the executions pending in the component's queue (admission.go):
	// beyond it a new top-level submission is refused; 0 means no limit. The components
	// sharing a queue must give the same value (see checkQueues).
	MaxPending int
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
	// Requires routes the imports of a workflow or a webhook endpoint: nil ("auto")
	// sends each imported function to the one deployed component that exports it (two
	// or more is an error naming them); a list of component names sends each to the
	// one of them that exports it, and to nothing else (see registry.routeImports).
	Requires []string
	// RestartBackoff and RestartBackoffMax (triggers): the delay before the first
	// restart of a trigger whose run ended, doubled at each further one up to the
	// max; a run that lasted RestartBackoffMax or longer starts the doubling afresh.
	// 0 means DefaultTriggerBackoff, DefaultTriggerBackoffMax.
	RestartBackoff, RestartBackoffMax time.Duration
	// RequiredLabels (activities, activity stubs): the executions run only on executors
	// whose labels include them all: this server's (Config.Labels) or an external
	// worker's (external.go).
	RequiredLabels []string
}

// QueueName returns the component's queue: Queue, or its name.
func (c *ComponentConfig) QueueName() string {
	if c.Queue != "" {
		return c.Queue
	}
	return c.Name
}

// retryConfig is the retry policy captured in the Locked events of an execution of the
// component, so that a config change never rewrites what a stream recorded: the one its
// submitter gave (Created.retry), if any, else the component's.
func (c *ComponentConfig) retryConfig(submitted *pb.RetryConfig) *pb.RetryConfig {
	if submitted != nil {
		return submitted
	}
	return &pb.RetryConfig{MaxRetries: c.MaxRetries, RetryExpBackoff: int64(c.RetryExpBackoff), RetryJitter: c.RetryJitter}
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
	// ID is <type>:<name>:sha256:<hex of the file> (componentID).
	ID string
	// Digest is the file's digest (wasmstore.Digest), the ID's last part: components
	// with one digest run the same code.
	Digest string
	// Retired: the configuration no longer deploys this version, but unfinished
	// executions are pinned to it (versions.go). It runs them and nothing new.
	Retired bool
	// dropped: a retired version whose last execution has finished (versionFinished).
	dropped atomic.Bool
	WIT     *wit.Resolve
	Exports []*wit.Function
	Imports []*wit.Function
	// routes are the functions a workflow or webhook endpoint may call or submit, and
	// the component each goes to (see mayCall and registry.routeImports).
	routes  map[string]Function
	exports map[string]*wit.Function
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

	// budget counts recent attempts for Config.RetryBudget; nil without one.
	budget *retrybudget.Budget
}

// RetryBudget is an activity's retry budget: see package retrybudget.
type RetryBudget = retrybudget.Config

// RetryBudgetAction is what an exhausted retry budget does to a retry.
type RetryBudgetAction = retrybudget.Action

// What an exhausted retry budget does to a retry.
const (
	RetryBudgetWait = retrybudget.Wait
	RetryBudgetSkip = retrybudget.Skip
)

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
	_, routed := c.routes[ffqn]
	return routed || c.exports[ffqn] != nil
}

// function returns the exported function ffqn of c.
func (c *Component) function(ffqn string) (Function, bool) {
	fn := c.exports[ffqn]
	return Function{Component: c, Fn: fn}, fn != nil
}

// Function describes one function the engine can run.
type Function struct {
	Component *Component
	Fn        *wit.Function
}

// registry holds the loaded components: the deployed ones, the retired versions that
// unfinished executions are pinned to (versions.go), and, through route, which
// component a new execution of a function goes to.
type registry struct {
	components []*Component          // deployed, by name
	retired    []*Component          // retired versions, by ID
	byID       map[string]*Component // deployed and retired
	byName     map[string]*Component // deployed
	// byFFQN is, for each function, where a submission that names no component goes:
	// the deployed exporter declared last in the configuration (the newest).
	byFFQN map[string]Function
	// exporters are every deployed exporter of each function, in declaration order.
	exporters map[string][]Function
}

// loadComponents loads and compiles the deployed components and the retired versions,
// and routes the imports of each (routeImports).
func loadComponents(ctx context.Context, rt compiler, deployed []ComponentConfig, retired ...ComponentConfig) (*registry, error) {
	cfgs := append(slices.Clip(deployed), retired...)
	cs, errs := compileConfigs(ctx, rt, cfgs, true)
	for i, err := range errs {
		if err != nil { // the first in the config's order, whichever failed first
			if i >= len(deployed) {
				err = fmt.Errorf("retired version %s, which unfinished executions need: %w", cfgs[i].Path, err)
			}
			return nil, err
		}
	}
	return newRegistry(cs[:len(deployed)], cs[len(deployed):])
}

// compileConfigs loads and compiles the components of cfgs: the component or the error
// of each, in cfgs' order. With stopAtError, no component is started after a failure
// (its error could not be the one reported; it is left nil and unloaded); the earlier
// ones all run, so the first error is the same whatever the timing.
func compileConfigs(ctx context.Context, rt compiler, cfgs []ComponentConfig, stopAtError bool) ([]*Component, []error) {
	// Up to GOMAXPROCS at once. Compile spreads the code generation of one module over
	// every core, but not the rest (reading the file and the WIT, rewriting the module,
	// loading compiled code from the cache), which is most of a start from a warm cache.
	// The peak memory grows with the modules compiled at once (a Go guest takes hundreds
	// of MiB while it compiles): hence no more than the cores.
	cs := make([]*Component, len(cfgs))
	errs := make([]error, len(cfgs))
	workers := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	var failed atomic.Bool
	for i := range cfgs {
		workers <- struct{}{}
		if stopAtError && failed.Load() {
			<-workers
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-workers; wg.Done() }()
			cs[i], errs[i] = loadComponent(ctx, rt, cfgs[i])
			if errs[i] != nil {
				failed.Store(true)
			}
		}()
	}
	wg.Wait()
	return cs, errs
}

// newRegistry makes the registry of loaded components: deployed, in the configuration's
// order, and retired versions.
func newRegistry(deployed, retired []*Component) (*registry, error) {
	return buildRegistry(deployed, retired, true)
}

// buildRegistry is newRegistry; strict false routes the deployed components' imports as
// a retired version's are (an import that does not resolve fails when it is called):
// for an offline engine (OpenOffline), which loads what the data directory recorded,
// without the components that have no file there (inline stubs).
func buildRegistry(deployed, retired []*Component, strict bool) (*registry, error) {
	reg := &registry{byFFQN: map[string]Function{}, exporters: map[string][]Function{}, byID: map[string]*Component{}, byName: map[string]*Component{}}
	for _, c := range retired {
		c.Retired = true
		reg.retired = append(reg.retired, c)
		reg.byID[c.ID] = c
	}
	for _, c := range deployed {
		if reg.byName[c.Config.Name] != nil {
			return nil, fmt.Errorf("component %q: the name is used twice", c.Config.Name)
		}
		reg.byName[c.Config.Name] = c
		reg.byID[c.ID] = c
		reg.components = append(reg.components, c)
		for _, fn := range c.Exports {
			ffqn := fn.FFQN()
			if prev := reg.exporters[ffqn]; len(prev) > 0 && prev[0].Component.Config.Type != c.Config.Type {
				// A caller's extension imports (stubs, schedules) and the runner depend on
				// the type: one function, one type.
				return nil, fmt.Errorf("component %q: function %s is also exported by %s %q: the components exporting a function must be of one type",
					c.Config.Name, ffqn, prev[0].Component.Config.Type, prev[0].Component.Config.Name)
			}
			f := Function{Component: c, Fn: fn}
			reg.exporters[ffqn] = append(reg.exporters[ffqn], f)
			reg.byFFQN[ffqn] = f // declared later: newer
		}
	}
	for _, c := range reg.components {
		if err := reg.routeImports(c, strict); err != nil {
			return nil, err
		}
	}
	for _, c := range reg.retired {
		_ = reg.routeImports(c, false)
	}
	sort.Slice(reg.components, func(i, j int) bool { return reg.components[i].Config.Name < reg.components[j].Config.Name })
	sort.Slice(reg.retired, func(i, j int) bool { return reg.retired[i].ID < reg.retired[j].ID })
	return reg, nil
}

// routeImports decides where each function a workflow, webhook endpoint or trigger imports goes
// (c.routes), once, at start: a child's Created event records the component it went
// to, and a replay finds the child created, so that later routing never changes what a
// history did. Config.Requires nil ("auto") sends a function to the one deployed
// component exporting it; a list, to the one listed component exporting it. The
// built-in components' functions are everyone's, and a component's own exports go to
// itself (a workflow may recurse). strict is false for a retired version: its imports go
// to what is deployed now, and one that no longer resolves fails when it is called,
// not at start (its replays need no routing).
func (reg *registry) routeImports(c *Component, strict bool) error {
	if c.Config.Type != Workflow && c.Config.Type != WebhookEndpoint && c.Config.Type != Trigger {
		return nil
	}
	var allowed map[string]bool
	if c.Config.Requires != nil {
		allowed = map[string]bool{}
		for _, name := range c.Config.Requires {
			if reg.deployed(name) == nil && strict {
				return fmt.Errorf("component %q: requires %q, which is not a deployed component", c.Config.Name, name)
			}
			allowed[name] = true
		}
	}
	for _, fn := range c.Imports {
		ffqn, kind, ext := wit.SplitExtension(fn.FFQN())
		if !ext {
			ffqn = fn.FFQN()
		}
		target, err := reg.routeImport(c, fn.FFQN(), ffqn, allowed)
		if err == nil {
			isStub := target.Component.Config.Type == ActivityStub
			switch {
			case kind == wit.ExtStub && !isStub:
				err = fmt.Errorf("component %q imports %s, but %s is not an activity stub's function", c.Config.Name, fn.FFQN(), ffqn)
			case kind == wit.ExtSchedule && isStub:
				err = fmt.Errorf("component %q imports %s: activity stubs cannot be scheduled", c.Config.Name, fn.FFQN())
			case c.Config.Type == WebhookEndpoint && ext && kind != wit.ExtSchedule:
				err = fmt.Errorf("webhook endpoint %q imports %s: a webhook endpoint may only call functions and schedule them (-obelisk-schedule), not use join sets or stubs", c.Config.Name, fn.FFQN())
			case c.Config.Type == Trigger && ext && kind != wit.ExtSchedule:
				err = fmt.Errorf("trigger %q imports %s: a trigger may only call functions and schedule them (-obelisk-schedule), not use join sets or stubs", c.Config.Name, fn.FFQN())
			}
		}
		if err != nil {
			if strict {
				return err
			}
			continue
		}
		c.routes[ffqn] = target
	}
	for ffqn, fns := range reg.exporters {
		if fns[0].Component.Config.Type == ActivityNative {
			c.routes[ffqn] = fns[0]
		}
	}
	for ffqn, fn := range c.exports {
		switch {
		case !c.Retired:
			c.routes[ffqn] = Function{Component: c, Fn: fn}
		case reg.byFFQN[ffqn].Component != nil:
			c.routes[ffqn] = reg.byFFQN[ffqn] // a retired version's new children are the newest's
		}
	}
	return nil
}

// routeImport returns the component an import of c goes to (see routeImports); imported
// is the function as imported, ffqn the function it calls.
func (reg *registry) routeImport(c *Component, imported, ffqn string, allowed map[string]bool) (Function, error) {
	var cands []Function
	var names []string
	for _, f := range reg.exporters[ffqn] {
		if allowed == nil || allowed[f.Component.Config.Name] || f.Component.Config.Type == ActivityNative {
			cands = append(cands, f)
			names = append(names, strconv.Quote(f.Component.Config.Name))
		}
	}
	switch {
	case len(cands) == 1:
		return cands[0], nil
	case len(cands) > 1 && sameCode(cands):
		// One file deployed under several names: whichever is called, the same code
		// runs, so there is nothing to choose; the newest, as for a submission.
		return cands[len(cands)-1], nil
	case len(cands) > 1:
		return Function{}, fmt.Errorf("component %q imports %s, which components %s all export: say which one it calls with requires = [%s] (or another of them)",
			c.Config.Name, imported, strings.Join(names, " and "), names[len(names)-1])
	case allowed != nil && len(reg.exporters[ffqn]) > 0:
		var others []string
		for _, f := range reg.exporters[ffqn] {
			others = append(others, strconv.Quote(f.Component.Config.Name))
		}
		return Function{}, fmt.Errorf("component %q imports %s, which none of the components it requires (%s) exports (%s do)",
			c.Config.Name, imported, strings.Join(c.Config.Requires, ", "), strings.Join(others, ", "))
	}
	return Function{}, fmt.Errorf("component %q imports %s, which no component exports", c.Config.Name, imported)
}

// sameCode reports whether the functions are all of components made from the same
// file.
func sameCode(fns []Function) bool {
	for _, f := range fns[1:] {
		if f.Component.Digest != fns[0].Component.Digest {
			return false
		}
	}
	return true
}

// deployed returns the deployed component named name, nil if there is none.
func (reg *registry) deployed(name string) *Component { return reg.byName[name] }

// lookup returns the component named or identified by component: a deployed one's
// name or ID, a retired version's ID, or, if no deployed component has that name, a
// retired version's name (its newest).
func (reg *registry) lookup(component string) (*Component, error) {
	c := reg.byName[component]
	if c == nil {
		c = reg.byID[component]
	}
	if c == nil {
		for _, r := range reg.retired {
			if r.Config.Name == component {
				c = r
			}
		}
	}
	if c == nil {
		nf := &ComponentNotFoundError{Component: component}
		for _, d := range reg.components {
			nf.Deployed = append(nf.Deployed, d.Config.Name)
		}
		return nil, nf
	}
	return c, nil
}

// ComponentNotFoundError: a submission names a component that is not deployed.
type ComponentNotFoundError struct {
	Component string
	Deployed  []string
}

func (e *ComponentNotFoundError) Error() string {
	return fmt.Sprintf("component %s not found: it is neither the name nor the ID of a deployed component (deployed: %s)", clip.Quote(e.Component), strings.Join(e.Deployed, ", "))
}

// route picks the component that runs a new execution of ffqn. It is the one place that
// does: API submissions, workflows' children and schedules, webhook endpoints' calls.
// component, if not empty, is the submitter's choice (a deployed component's name or
// ID); otherwise a caller (a workflow or webhook endpoint; nil for the API) sends its
// imports where routeImports decided, and anything else goes to the newest deployed
// exporter (byFFQN). Retired versions are never chosen: they only run the executions
// pinned to them.
func (reg *registry) route(caller *Component, ffqn, component string) (Function, error) {
	if component != "" {
		c := reg.deployed(component)
		if c == nil {
			if x := reg.byID[component]; x != nil && !x.Retired {
				c = x
			}
		}
		if c == nil {
			if x := reg.byID[component]; x != nil {
				return Function{}, &InvalidArgumentError{fmt.Errorf("component %s is a retired version: it only finishes the executions pinned to it, and takes no new ones", component)}
			}
			nf := &ComponentNotFoundError{Component: component}
			for _, d := range reg.components {
				nf.Deployed = append(nf.Deployed, d.Config.Name)
			}
			return Function{}, nf
		}
		fn, ok := c.function(ffqn)
		if !ok {
			if _, _, err := events.SplitFFQN(ffqn); err != nil {
				return Function{}, &InvalidArgumentError{err}
			}
			return Function{}, &InvalidArgumentError{fmt.Errorf("component %q does not export %s", c.Config.Name, clip.Quote(ffqn))}
		}
		return fn, nil
	}
	if caller != nil {
		if fn, ok := caller.routes[ffqn]; ok {
			return fn, nil
		}
	}
	if fn, ok := reg.byFFQN[ffqn]; ok {
		return fn, nil
	}
	return Function{}, &FunctionNotFoundError{ffqn}
}

// functionOf returns function ffqn of the component an execution is pinned to
// (componentID), or, for a component this process does not have (an execution of an
// older store, which recorded no version), of its newest deployed exporter.
func (reg *registry) functionOf(componentID, ffqn string) (Function, bool) {
	if c := reg.byID[componentID]; c != nil {
		if fn, ok := c.function(ffqn); ok {
			return fn, true
		}
	}
	fn, ok := reg.byFFQN[ffqn]
	return fn, ok
}

func loadComponent(ctx context.Context, rt compiler, cfg ComponentConfig) (*Component, error) {
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
	return compileComponent(ctx, rt, cfg, wasm, files)
}

// compileComponent makes the component of cfg from its file's content wasm (or what
// identifies a component without one) and its WIT files.
func compileComponent(ctx context.Context, rt compiler, cfg ComponentConfig, wasm []byte, files []wit.File) (*Component, error) {
	digest := wasmstore.Digest(wasm)
	id := componentID(cfg.Type, cfg.Name, digest)
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
	c := &Component{Config: cfg, ID: id, Digest: digest, WIT: resolve, WITFiles: files, Exports: exports, Imports: imports, routes: map[string]Function{}, exports: map[string]*wit.Function{}}
	if b := cfg.RetryBudget; b != nil {
		if err := b.Check(); err != nil {
			return nil, fmt.Errorf("component %q: retry_budget: %w", cfg.Name, err)
		}
		c.budget = retrybudget.New(*b)
	}
	for _, fn := range exports {
		c.exports[fn.FFQN()] = fn
	}
	if cfg.Type == ActivityStub || cfg.Type == ActivityNative {
		return c, nil
	}
	if cfg.Type == ActivityWasm || cfg.Type == WebhookEndpoint || cfg.Type == Trigger {
		if c.http, err = wasmhost.NewOutbound(wasmhost.HTTPPolicy{AllowedHosts: cfg.AllowedHosts, DeniedHosts: cfg.DeniedHosts}); err != nil {
			return nil, fmt.Errorf("component %q: %w", cfg.Name, err)
		}
	}
	mod, err := rt.compile(ctx, cfg.Name, digest, wasm, uint32(cfg.memoryLimit()/wasmPage))
	if err != nil {
		return nil, fmt.Errorf("component %q: %w", cfg.Name, err)
	}
	c.module = mod
	return c, nil
}
