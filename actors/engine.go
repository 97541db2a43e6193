package actors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/proto"

	"github.com/obelisk-go/obelisk/actors/internal/histories"
	"github.com/obelisk-go/obelisk/actors/internal/kvconfig"
	"github.com/obelisk-go/obelisk/actors/internal/membudget"
	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/internal/clip"
	"github.com/obelisk-go/obelisk/metrics"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
	"github.com/obelisk-go/obelisk/tracing"
	"github.com/obelisk-go/obelisk/wasmhost"
	"github.com/obelisk-go/obelisk/wasmhost/wit"
)

// Config configures an Engine.
type Config struct {
	// DataDir holds the event store (DataDir/store) and the compilation cache
	// (DataDir/wasm-cache) unless CacheDir is set.
	DataDir    string
	CacheDir   string
	Components []ComponentConfig
	// MaxResidentWorkflows bounds the workflow instances kept in memory while they wait
	// for a child ("await" strategy); 0 means 64, negative means none.
	MaxResidentWorkflows int
	// SnapshotEvery: a workflow instance leaving memory while it waits is snapshotted
	// when its history grew by at least this many events since its last snapshot, and
	// later runs resume from the snapshot instead of replaying (workflow_snapshots.go);
	// 0 means DefaultSnapshotEvery, negative never.
	SnapshotEvery int
	Logger        *slog.Logger
	// Metrics, if set, is where the engine reports (see package metrics).
	Metrics *metrics.Metrics
	// Tracer, if set, emits the spans of executions and attempts and carries trace
	// context into children and outgoing HTTP (package tracing, actors/tracing.go).
	Tracer *tracing.Tracer
	// DisableWorkflowSnapshots, DisableActivitySnapshots: every instance runs
	// _initialize instead of being restored from a snapshot (wasmhost.Config).
	DisableWorkflowSnapshots, DisableActivitySnapshots bool
	// DisableInstanceReuse: every instance is closed after its run (wasmhost.Config).
	DisableInstanceReuse bool
	// MemoryBudget is the guest memory, in bytes, that the instances of the runs in memory
	// at once may hold (see run_memory.go); 0 means half the machine's memory, at least 2 GiB.
	MemoryBudget uint64
	// MaxParamsBytes bounds the parameters (JSON) of an execution, submitted through the
	// API or by a workflow or a webhook for a child or a schedule; 0 means
	// DefaultMaxParamsBytes.
	MaxParamsBytes int
	// MaxLogsPerExecution bounds the guest log lines kept per execution (oldest kept,
	// the rest counted); 0 means events.DefaultMaxLogsPerExecution, negative none.
	MaxLogsPerExecution int
	// StoreCacheSize and StoreMemTableSize size the event store's block cache and its
	// memtables, in bytes (events.Options); 0 means the events package's defaults.
	StoreCacheSize, StoreMemTableSize int64
	// RetentionFinishedAfter: a top-level execution whose whole tree finished longer
	// ago than this is deleted with its tree (service_retention.go); 0 keeps everything, unless
	// a component sets its own.
	RetentionFinishedAfter time.Duration
	// KVConfig are the read-only buckets of the built-in KV component read from TOML
	// files (package actors/internal/kvconfig).
	KVConfig []KVConfigBucket
	// Schedules are the config's periodic schedules (service_schedules.go), applied at start.
	Schedules []ScheduleConfig
	// StoreFS is the file system of the event store (nil: the operating system's);
	// tests give one that injects faults.
	StoreFS vfs.FS
	// StoreBeforeCommit, if set, is the store's events.Options.BeforeCommit: it sees
	// every transaction before it is written and may refuse it, which fails the store
	// and so stops the engine as a crash right before it would (`obelisk test crash-sim`).
	StoreBeforeCommit func(states []*pb.ExecutionState) error
	// Modules, if set, is the wasm runtime and the compiled modules the engine uses,
	// shared with the engines started before and after it in this process, which then
	// compile or load no component another has (`obelisk test crash-sim` starts one per
	// crash point). Its owner closes it after the last engine; the engine does not.
	Modules *Modules
	// MaxPending bounds the executions pending in all queues together (admission.go):
	// beyond it a new top-level submission is refused; 0 means no limit.
	MaxPending int
	// MaxDelay, if positive, shortens every durable delay a workflow requests (a sleep,
	// a delay in a join set) to at most this long. The recorded request is the
	// workflow's own, only the time the delay expires is earlier: for simulations that
	// run a workflow many times (`obelisk test crash-sim`), never for a server.
	MaxDelay time.Duration

	// NodeName, set when the engine is one node of a cluster, names this node in its
	// executors' locks (executor ID "Exr_<ULID>@<NodeName>"): at start, the node
	// releases at once the locks its own earlier processes held, and leaves the other
	// nodes' to expire (recover). "": a single node, which releases every server lock.
	NodeName string
	// OpenStore, if set, opens the event store instead of events.Open (a cluster's
	// replicated store, events/replicated), with the options the engine would give
	// events.Open.
	OpenStore func(ctx context.Context, dir string, opts events.Options) (LocalStore, error)

	// Labels are this server's executors' labels: they run the executions of the
	// components whose RequiredLabels they include; the others wait for an external
	// worker that has them (external.go).
	Labels []string

	// testHook, set only by this package's tests, is called at steps of the supervised
	// services' passes (see Engine.hook), where a test may panic to crash one.
	testHook func(service, step string)
	// retentionNow, set only by tests, lets retention pass at once (retentionStartDelay).
	retentionNow bool
}

// LocalStore is the event store an engine runs on: events.Store and what the engine
// reads of the local Pebble store beside it (*events.PebbleStore, or a replicated store
// that projects its log into one).
type LocalStore interface {
	events.Store
	HasCacheEntries() (bool, error)
	Memory() events.Memory
}

// DefaultMaxParamsBytes is the default of Config.MaxParamsBytes. Parameters are stored
// with the execution and read by every run and replay of it (and of its parent, which
// records them too): they are meant for arguments, not for bulk data.
const DefaultMaxParamsBytes = 1 << 20

// StoreDir is the event store's folder in a data directory (Config.DataDir).
func StoreDir(dataDir string) string { return filepath.Join(dataDir, "store") }

// Engine runs the executions of one node.
type Engine struct {
	cfg      Config
	log      *slog.Logger
	store    events.Store
	rt       *wasmhost.Runtime
	reg      *registry
	versions *versions // the component versions of the data directory (versions.go)
	system   *actor.ActorSystem
	executor string // this process's executor ID: runs of earlier processes are dead

	// ownRuntime: rt is the engine's own, closed with it (not Config.Modules').
	ownRuntime bool
	// woken: everything onCommit wakes exists. A cluster node's store applies other
	// nodes' commits from the moment it opens, while the engine is still being built;
	// onCommit ignores them until then, and recover's scans, which come after, see them.
	// What is not rescanned: a retired version's count of live executions (taken by
	// prepareVersions before) keeps one finished meanwhile, so the version stays loaded
	// until the next start (the safe side); the finished metric and spans miss it.
	woken atomic.Bool
	// unavailable are the recorded component versions an offline engine (OpenOffline)
	// could not load, by ID, and why: their executions cannot be replayed.
	unavailable map[string]error

	executors map[string]*executor // by component ID
	queues    map[string]*queue    // by queue name: the queues served here
	timers    *timerService
	delays    *delayTimer
	deadlines *deadlineTimer
	resident  *resident
	watchers  watchers
	runs      liveRuns
	active    activeRuns
	cancels   *canceller
	retention *retention
	spans     *spanQueue // nil without Config.Tracer
	// kvConfig: the read-only buckets of the KV component, by name.
	kvConfig  map[string]*kvconfig.Bucket
	histories *histories.Cache
	// reads is SyncReads' barrier on a cluster's node (readsync.go); nil on a single node.
	reads *readBarrier

	// instantiating bounds concurrent instantiations (see instantiate).
	instantiating chan struct{}
	// memory is the guest memory budget of the runs' instances (run_memory.go).
	memory *membudget.Budget
	// keepalives renews the locks of kept-alive activity attempts (service_keepalives.go).
	keepalives *keepalives
	// triggers are the trigger components' services (trigger.go).
	triggers []*trigger
	// schedules fires the periodic schedules (service_schedules.go).
	schedules *scheduler
	// workerWaits wakes external workers waiting for an execution (external.go).
	workerWaits workerWaits
	// workerPins remembers executions pinned to versions workers pass over (external.go).
	workerPins workerPins
	// pending is the server's max_pending (Config.MaxPending), nil without one.
	pending *pendingLimit
	// queueLimits are the queues' max_pending (admission.go), by queue name: of every
	// queue a component names, served here or only by external workers.
	queueLimits map[string]*pendingLimit

	// runCtx is the context of the services and the runs; cancel ends it at Close or
	// when the engine fails.
	runCtx context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// supervisor is the parent of the supervised services (supervisor.go);
	// servicesStopped is closed once it and they have stopped.
	supervisor      *actor.PID
	servicesStopped chan struct{}

	// failed is closed, and failErr set, when the engine stops because of its store or
	// a service that failed too often.
	failed   chan struct{}
	failOnce sync.Once
	failErr  error
}

// New opens the store, compiles the components and starts executors and timers.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(cfg.DataDir, "wasm-cache")
	}
	if cfg.MaxResidentWorkflows == 0 {
		cfg.MaxResidentWorkflows = 64
	}
	if cfg.SnapshotEvery == 0 {
		cfg.SnapshotEvery = DefaultSnapshotEvery
	}
	if cfg.MemoryBudget == 0 {
		cfg.MemoryBudget = defaultMemoryBudget()
	}
	if err := checkMemory(cfg.MemoryBudget, cfg.Components); err != nil {
		return nil, err
	}
	for _, c := range cfg.Components {
		if c.Name == KVComponentName {
			return nil, fmt.Errorf("component %q: the name is reserved for the built-in KV component", c.Name)
		}
	}
	cfg.Components = append(slices.Clone(cfg.Components), kvComponentConfig())
	if err := checkQueues(cfg.Components); err != nil {
		return nil, err
	}
	kvConfig := map[string]*kvconfig.Bucket{}
	for _, b := range cfg.KVConfig {
		if err := events.CheckKVWrite("config", events.KVWrite{Bucket: b.Bucket, Key: "-"}); err != nil {
			return nil, fmt.Errorf("kv_config bucket %q: %w", b.Bucket, err)
		}
		if kvConfig[b.Bucket] != nil {
			return nil, fmt.Errorf("kv_config bucket %q is declared twice", b.Bucket)
		}
		bucket, err := kvconfig.Open(b.Bucket, b.Path)
		if err != nil {
			return nil, err
		}
		kvConfig[b.Bucket] = bucket
	}
	if cfg.MaxParamsBytes <= 0 {
		cfg.MaxParamsBytes = DefaultMaxParamsBytes
	}
	e := &Engine{cfg: cfg, log: cfg.Logger, executors: map[string]*executor{}, queues: map[string]*queue{}, executor: events.NewExecutorID(time.Now()), failed: make(chan struct{}), kvConfig: kvConfig}
	if cfg.NodeName != "" {
		e.executor += nodeSuffix(cfg.NodeName)
	}
	e.resident = newResident(cfg.MaxResidentWorkflows)
	if cfg.MaxPending > 0 {
		e.pending = &pendingLimit{max: cfg.MaxPending}
	}
	e.histories = histories.New(256)
	e.instantiating = make(chan struct{}, runtime.GOMAXPROCS(0))
	e.memory = membudget.New(cfg.MemoryBudget, e.resident.reclaim)
	e.watchers.m = map[string]map[chan struct{}]struct{}{}
	e.runs.m = map[string]struct{}{}
	e.active.m = map[string]context.CancelFunc{}
	e.cancels = newCanceller(e)
	e.retention = newRetention(e, cfg)
	if cfg.Tracer != nil {
		e.spans = newSpanQueue(cfg.Tracer, cfg.Logger)
	}
	var comp compiler
	rt := cfg.Modules.runtime()
	if rt == nil {
		var err error
		if rt, err = wasmhost.NewRuntime(ctx, runtimeConfig(cfg)); err != nil {
			return nil, fmt.Errorf("start wasm runtime: %w", err)
		}
		e.ownRuntime = true
		comp = runtimeCompiler{rt}
	} else {
		comp = cfg.Modules
	}
	e.rt = rt
	// The store is opened first: its unfinished executions say which component versions
	// must be loaded beside the deployed ones (versions.go). This node commits nothing
	// before recover, below, when everything onCommit wakes exists (woken).
	storeOpts := events.Options{
		OnCommit: e.onCommit, OnGroupCommit: cfg.Metrics.GroupCommit, BeforeCommit: cfg.StoreBeforeCommit, Logger: cfg.Logger, FS: cfg.StoreFS,
		CacheSize: cfg.StoreCacheSize, MemTableSize: cfg.StoreMemTableSize, MaxLogsPerExecution: cfg.MaxLogsPerExecution,
	}
	var store LocalStore
	var err error
	if cfg.OpenStore != nil {
		store, err = cfg.OpenStore(ctx, StoreDir(cfg.DataDir), storeOpts)
	} else {
		store, err = events.Open(StoreDir(cfg.DataDir), storeOpts)
	}
	if err != nil {
		e.spans.close()
		e.closeRuntime(ctx)
		return nil, err
	}
	e.store = store
	fail := func(err error) (*Engine, error) {
		store.Close()
		e.spans.close()
		e.closeRuntime(ctx)
		return nil, err
	}
	// Entries of a result cache the config no longer has still expire and go.
	if has, err := store.HasCacheEntries(); err != nil {
		return fail(fmt.Errorf("read the result cache: %w", err))
	} else if has {
		e.retention.sweepsCache = true
	}
	retired, needed, saveVersions, err := e.prepareVersions(ctx, cfg.Components)
	if err != nil {
		return fail(err)
	}
	if rc, ok := comp.(runtimeCompiler); ok {
		comp = preloading{rc, needed}
	}
	loading := time.Now()
	e.log.Info("loading components", "count", len(cfg.Components), "retired_versions", len(retired), "at_once", runtime.GOMAXPROCS(0), "cache_dir", cfg.CacheDir)
	reg, err := loadComponents(ctx, comp, cfg.Components, retired...)
	if err != nil {
		return fail(err)
	}
	e.log.Info("components loaded", "count", len(reg.components), "took", time.Since(loading).Round(time.Millisecond))
	e.reg = reg
	if err := saveVersions(); err != nil {
		return fail(err)
	}
	// Compiling leaves hundreds of MiB of garbage; give it back before serving rather
	// than carrying it as resident memory. With shared Modules this engine compiled
	// little or nothing, and a full collection per engine would be most of its start.
	if e.ownRuntime {
		debug.FreeOSMemory()
	}
	e.timers = newTimerService(e)
	e.delays = newDelayTimer(e)
	e.deadlines = newDeadlineTimer(e)
	e.keepalives = newKeepalives(e)
	e.schedules = newScheduler(e)
	// A queue's max_pending bounds what waits in it whoever serves it: an activity left
	// to external workers (labels this server lacks) or a stub too.
	e.queueLimits = make(map[string]*pendingLimit)
	for _, c := range append(slices.Clip(reg.components), reg.retired...) {
		if name := c.Config.QueueName(); c.Config.MaxPending > 0 && e.queueLimits[name] == nil {
			e.queueLimits[name] = &pendingLimit{max: c.Config.MaxPending} // the same for all its components: checkQueues
		}
	}
	// The deployed components first: a retired version is never the default executor
	// of a function (queue.serve), and shares its queue's limit.
	for _, c := range append(slices.Clip(reg.components), reg.retired...) {
		if e.runsHere(c) {
			name := c.Config.QueueName()
			q := e.queues[name]
			if q == nil {
				q = newQueue(e, name, c.Config.MaxConcurrency) // the same for all its components: checkQueues
				e.queues[name] = q
			}
			e.executors[c.ID] = q.serve(c)
		}
	}
	for _, c := range append(slices.Clip(reg.components), reg.retired...) {
		for _, q := range e.queues {
			q.knowsOf(c)
		}
		if c.Config.Type != ActivityWasm || e.runsHere(c) {
			continue
		}
		if !c.Retired {
			e.log.Info("component left to external workers: this server lacks labels it requires", "component", c.Config.Name,
				"required_labels", c.Config.RequiredLabels, "server_labels", cfg.Labels)
		}
		if q := e.queues[c.Config.QueueName()]; q != nil {
			for ffqn := range c.exports {
				if q.byFFQN[ffqn] == nil {
					q.unserved.Store(ffqn, struct{}{}) // expected here: not warned about as unserved
				}
			}
		}
	}
	cfg.Metrics.GaugeVec("obelisk_store_memory_bytes", "The event store's memory outside Go's heap, by kind (cache_capacity, cache_used, memtable_size, memtables).", "kind",
		func() map[string]float64 {
			m := store.Memory()
			return map[string]float64{"cache_capacity": float64(m.CacheCapacity), "cache_used": float64(m.CacheUsed),
				"memtable_size": float64(m.MemTableSize), "memtables": float64(m.MemTables)}
		})
	e.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return cfg.Logger.With("lib", "protoactor")
	}))
	runCtx, cancel := context.WithCancel(context.Background())
	e.runCtx, e.cancel = runCtx, cancel
	e.reads = newReadBarrier(runCtx, store) // nil on a single node
	if e.reads != nil {
		// Said once: a store that hid its log (a wrapper) would silently serve stale reads.
		e.log.Info("reads wait for the cluster's log: a read sees every commit acknowledged before it, on any node")
	}
	for _, q := range e.queues {
		q.ctx = runCtx // before anything can dispatch eagerly to it
	}
	e.woken.Store(true) // before recover reads the store: no commit falls between
	if err := e.recover(ctx); err != nil {
		e.Close(ctx)
		return nil, err
	}
	if err := e.applyConfigSchedules(ctx, cfg.Schedules); err != nil {
		e.Close(ctx)
		return nil, err
	}
	e.registerGauges()
	e.triggers = e.newTriggers()
	e.startServices()
	e.goLoop(func() { e.stopOnStoreFailure(runCtx) })
	return e, nil
}

// stopOnStoreFailure stops the engine when the store fails: nothing can be committed
// any more, and work that cannot be recorded must not run (an activity's side effects
// would be repeated after the restart anyway).
func (e *Engine) stopOnStoreFailure(ctx context.Context) {
	select {
	case <-e.store.Failed():
		e.fail(e.store.Err())
	case <-ctx.Done():
	}
}

// fail stops the executors and the services for good; Failed is closed and Err returns
// err. Only the first failure counts.
func (e *Engine) fail(err error) {
	e.failOnce.Do(func() {
		e.log.Error("engine stopped", "err", err)
		e.failErr = err
		e.cancel()
		if e.supervisor != nil {
			e.system.Root.Stop(e.supervisor) // asynchronous: fail may run in the supervisor
		}
		close(e.failed)
	})
}

// Failed is closed when the engine has stopped because its store failed or a supervised
// service failed more often than its restart policy allows; Err then returns why. The
// process should exit: a restart (on a healthy disk) recovers every acknowledged
// execution.
func (e *Engine) Failed() <-chan struct{} { return e.failed }

// Err returns why the engine stopped: the store's failure (matching events.ErrFailed) or
// a *ServiceFailedError; nil while it works.
func (e *Engine) Err() error {
	select {
	case <-e.failed:
		return e.failErr
	default:
		return e.store.Err() // failed, but stopOnStoreFailure has not seen it yet
	}
}

func (e *Engine) goLoop(f func()) {
	e.wg.Add(1)
	go func() { defer e.wg.Done(); f() }()
}

// Close stops the loops, waits for running executions to stop and closes the store.
func (e *Engine) Close(ctx context.Context) error {
	if e.cancel != nil {
		e.cancel()
	}
	e.stopServices()
	e.wg.Wait()
	if e.system != nil {
		e.system.Shutdown()
	}
	if e.reg != nil {
		for _, c := range e.reg.components {
			if c.http != nil {
				c.http.CloseIdleConnections()
			}
		}
	}
	var errs []error
	if e.store != nil {
		errs = append(errs, e.store.Close())
	}
	e.spans.close() // after the store's last commit: its spans are emitted

	errs = append(errs, e.closeRuntime(ctx))
	return errors.Join(errs...)
}

// closeRuntime closes the engine's wasm runtime, unless Config.Modules owns it.
func (e *Engine) closeRuntime(ctx context.Context) error {
	if !e.ownRuntime {
		return nil
	}
	return e.rt.Close(ctx)
}

// recover makes executions left behind by a dead process runnable again: their runs
// died with it, so their locks and leases are released at once rather than at expiry.
// An external worker's lock is kept: its process did not die with the server's, and the
// timer service expires the lock if the worker is really gone.
func (e *Engine) recover(ctx context.Context) error {
	now := time.Now()
	var stale, webhooks []string
	err := e.store.LiveStates(ctx, func(st *pb.ExecutionState) error {
		if st.ComponentType == pb.ComponentType_COMPONENT_TYPE_WEBHOOK_ENDPOINT {
			if e.heldHere(st) {
				webhooks = append(webhooks, st.ExecutionId) // see abandonWebhooks
			}
			return nil
		}
		if st.Status == pb.Status_STATUS_LOCKED && heldByWorker(st) {
			// A worker's: kept (see above).
		} else if !e.heldHere(st) {
			// Another node's, in a cluster: it may be running there. Its lock expires
			// if that node is gone (the timer service).
		} else if st.Status == pb.Status_STATUS_LOCKED || st.RunId != "" && st.LockExpiresAt > now.UnixNano() {
			stale = append(stale, st.ExecutionId)
		}
		if st.CancelRequested {
			e.cancels.enqueue(st.ExecutionId)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	for _, id := range stale {
		if _, err := e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
			now := time.Now()
			tx, err := e.expireTx(st, now, true)
			return e.noRetryPastDeadline(st, tx, now), err
		}); err != nil {
			return fmt.Errorf("recover %s: %w", id, err)
		}
	}
	if len(stale) > 0 {
		e.log.Info("released locks of a previous run", "executions", len(stale))
	}
	return e.abandonWebhooks(ctx, webhooks)
}

// nodeSuffix ends the executor IDs of a cluster's node.
func nodeSuffix(node string) string { return "@" + node }

// heldHere says whether st's lock, or its last one, is this node's: of this process or an
// earlier one on this node. A single node holds every server lock.
func (e *Engine) heldHere(st *pb.ExecutionState) bool {
	if e.cfg.NodeName == "" || st.ExecutorId == "" {
		return true
	}
	return strings.HasSuffix(st.ExecutorId, nodeSuffix(e.cfg.NodeName))
}

// onCommit is the store's commit hook: it wakes whoever waits for these states.
func (e *Engine) onCommit(states []*pb.ExecutionState) {
	if !e.woken.Load() {
		return
	}
	for _, st := range states {
		switch st.Status {
		case pb.Status_STATUS_PENDING_AT:
			if q, ok := e.queues[st.Queue]; ok && events.Runnable(st) {
				q.notify(st.PendingAt)
			}
			if events.Runnable(st) {
				e.workerWaits.notify(st.Queue, st.Ffqn)
			}
		case pb.Status_STATUS_LOCKED:
			e.timers.notify(st.LockExpiresAt)
		}
		if events.DeadlineOpen(st) {
			e.deadlines.notify(st.Deadline)
		}
		if st.Status == pb.Status_STATUS_FINISHED || st.CancelRequested || st.Paused {
			// The execution is no longer its run's: stop the run (a cancelled activity is
			// killed, a paused or cancelled workflow stops where it is).
			e.active.stop(st.ExecutionId)
		}
		if st.CancelRequested && st.Status != pb.Status_STATUS_FINISHED {
			e.cancels.enqueue(st.ExecutionId)
		}
		if st.Status == pb.Status_STATUS_FINISHED {
			// A finished state changes no more: each is reported once.
			e.cfg.Metrics.Finished(componentTypeName(st.ComponentType), events.ResultKindName(st.ResultKind))
			e.versionFinished(st.ComponentId)
			if e.spans != nil {
				e.traceFinished(st)
			}
		}
		e.workerPins.forget(st.ExecutionId)
		e.resident.notify(st.ExecutionId)
		e.watchers.notify(st.ExecutionId)
	}
}

// FunctionNotFoundError: no deployed component exports the function.
type FunctionNotFoundError struct{ FFQN string }

func (e *FunctionNotFoundError) Error() string {
	return fmt.Sprintf("function %s not found: no deployed component exports it", clip.Quote(e.FFQN))
}

// InvalidArgumentError: the submission is malformed (parameters, ID).
type InvalidArgumentError struct{ Err error }

func (e *InvalidArgumentError) Error() string { return e.Err.Error() }
func (e *InvalidArgumentError) Unwrap() error { return e.Err }

// ExistsError: the execution ID is taken by a submission with another function, other
// parameters or another queue.
type ExistsError struct{ ExecutionID string }

func (e *ExistsError) Error() string {
	return fmt.Sprintf("execution %s already exists with another function, other parameters, another queue or another retry policy", e.ExecutionID)
}

// SubmitOption changes how Engine.Submit creates an execution.
type SubmitOption func(*submitOptions)

type submitOptions struct {
	queue, component string
	at               time.Time // due then; zero: now
	retry            *RetryOverride
	deadline         time.Time // zero: none (WithDeadline)
	// schedules are written with the execution when it is created (a firing records
	// itself in its schedule's record: service_schedules.go).
	schedules []events.ScheduleWrite
	// unlimited: created past max_pending (admission.go), for work the server already
	// committed to (a schedule's firing).
	unlimited bool
}

// MinRetryExpBackoff is the least first-retry delay a component or a submitter may set:
// below it a failing execution would spin.
const MinRetryExpBackoff = abi.MinRetryExpBackoff

// RetryOverride is a submitter's retry policy for one execution. Each field that is set
// replaces the component's (ComponentConfig.MaxRetries, RetryExpBackoff, RetryJitter);
// the whole policy is recorded in the execution's Created event.
type RetryOverride struct {
	MaxRetries *uint32
	Backoff    time.Duration // 0: the component's; else at least MinRetryExpBackoff
	Jitter     *float64      // in [0, 1]
}

// WithRetry gives the execution its own retry policy (see RetryOverride).
func WithRetry(r RetryOverride) SubmitOption {
	return func(o *submitOptions) { o.retry = &r }
}

// Bits of Created.retry_given: the fields of its retry policy that its submitter gave.
const (
	retryGivenMaxRetries = 1 << iota
	retryGivenBackoff
	retryGivenJitter
)

// given is which fields r sets (Created.retry_given); 0 for a nil r.
func (r *RetryOverride) given() uint32 {
	var g uint32
	if r == nil {
		return 0
	}
	if r.MaxRetries != nil {
		g |= retryGivenMaxRetries
	}
	if r.Backoff != 0 {
		g |= retryGivenBackoff
	}
	if r.Jitter != nil {
		g |= retryGivenJitter
	}
	return g
}

// sameRetry reports whether a submission of retry policy retry, of which the submitter
// gave the fields given, asks for the policy created recorded: the same fields given,
// with the same values. The fields the submitter left to the component are not compared:
// they were the component's config of then, which may have changed since.
func sameRetry(created *pb.Created, retry *pb.RetryConfig, given uint32) bool {
	was := created.Retry
	if was == nil || retry == nil {
		return was == nil && retry == nil
	}
	if created.RetryGiven == 0 { // recorded before retry_given, or an override setting no field
		return proto.Equal(was, retry)
	}
	if created.RetryGiven != given {
		return false
	}
	return (given&retryGivenMaxRetries == 0 || was.MaxRetries == retry.MaxRetries) &&
		(given&retryGivenBackoff == 0 || was.RetryExpBackoff == retry.RetryExpBackoff) &&
		(given&retryGivenJitter == 0 || was.RetryJitter == retry.RetryJitter)
}

// retryConfig is the policy r makes of c's: nil (none given) keeps the component's.
func (r *RetryOverride) retryConfig(c *ComponentConfig) (*pb.RetryConfig, error) {
	if r == nil {
		return nil, nil
	}
	rc := c.retryConfig(nil)
	if r.MaxRetries != nil {
		rc.MaxRetries = *r.MaxRetries
	}
	if r.Backoff != 0 {
		if err := abi.CheckRetryBackoff(r.Backoff); err != nil {
			return nil, err
		}
		rc.RetryExpBackoff = int64(r.Backoff)
	}
	if r.Jitter != nil {
		if err := abi.CheckRetryJitter(*r.Jitter); err != nil {
			return nil, err
		}
		rc.RetryJitter = *r.Jitter
	}
	return rc, nil
}

// retryOverrideOf is the override a guest's submit asks for (nil: none).
func retryOverrideOf(p *abi.RetryPolicy) *RetryOverride {
	if p == nil {
		return nil
	}
	return &RetryOverride{MaxRetries: p.MaxRetries, Backoff: time.Duration(p.RetryExpBackoffMS) * time.Millisecond, Jitter: p.RetryJitter}
}

// OfComponent submits the execution to the deployed component named (or identified)
// component, which must export the function; "" lets the engine choose: the newest
// component exporting it (registry.route).
func OfComponent(component string) SubmitOption {
	return func(o *submitOptions) { o.component = component }
}

// pastMaxPending lets the execution be created whatever the max_pending limits
// (admission.go).
func pastMaxPending() SubmitOption {
	return func(o *submitOptions) { o.unlimited = true }
}

// dueAt makes the execution due at t rather than now (a trigger's schedule).
func dueAt(t time.Time) SubmitOption {
	return func(o *submitOptions) { o.at = t }
}

// InQueue submits the execution to the named queue rather than its component's
// (ComponentConfig.Queue); "" keeps the component's. It runs once an executor that serves
// its component serves that queue: until then it stays pending there.
func InQueue(queue string) SubmitOption {
	return func(o *submitOptions) { o.queue = queue }
}

// Submit creates a top-level execution of ffqn. An empty id is generated. Submitting the
// same id with the same function, parameters and queue again is not an error
// (existed=true).
//
// The ID is returned in its canonical form (events.CanonicalTopLevelID): the ULID in upper
// case, however it was given.
func (e *Engine) Submit(ctx context.Context, id, ffqn string, params json.RawMessage, opts ...SubmitOption) (_ string, existed bool, _ error) {
	var o submitOptions
	for _, opt := range opts {
		opt(&o)
	}
	if err := e.checkParamsSize(params); err != nil {
		return "", false, &InvalidArgumentError{err}
	}
	if err := checkQueueName(o.queue); err != nil {
		return "", false, &InvalidArgumentError{err}
	}
	now := time.Now()
	if err := checkDeadline(o.deadline, now); err != nil {
		return "", false, &InvalidArgumentError{err}
	}
	if id == "" {
		id = events.NewExecutionID(now)
	} else {
		var err error
		if id, err = events.CanonicalTopLevelID(id); err != nil {
			return "", false, &InvalidArgumentError{err}
		}
	}
	fn, compact, err := e.checkSubmission(ffqn, params, o.component)
	if err != nil {
		return "", false, err
	}
	retry, err := o.retry.retryConfig(&fn.Component.Config)
	if err != nil {
		return "", false, &InvalidArgumentError{err}
	}
	created := traced(createdEvent(now, fn.Component, fn.Fn.FFQN(), compact, "", ""), e.incomingTrace(ctx))
	created.GetCreated().Retry, created.GetCreated().RetryGiven = retry, o.retry.given()
	if !o.deadline.IsZero() {
		created.GetCreated().Deadline = o.deadline.UnixNano()
	}
	if o.queue != "" {
		created.GetCreated().Queue = o.queue
	}
	if !o.at.IsZero() {
		created.GetCreated().ScheduledAt = o.at.UnixNano()
	}
	// The reservation is taken here, not in change's decision: that runs on the
	// execution's actor, maybe after change has given up (askTimeout), and a reservation
	// it took then would never be released. A refusal is answered only if the execution
	// does not exist: a repeated submission of one that exists answers as before,
	// whatever the queue holds.
	release, refusal := func() {}, error(nil)
	if !o.unlimited {
		if r, err := e.admit(created.GetCreated().Queue, now); err != nil {
			refusal = err
		} else {
			release = r
		}
	}
	var eager []*run
	st, err := e.change(ctx, id, func(st *pb.ExecutionState) (*events.Tx, error) {
		if st != nil {
			evs, err := e.store.Events(ctx, id, 0, 1)
			if err != nil {
				return nil, err
			}
			c := evs[0].GetCreated()
			if c.Ffqn == ffqn && bytes.Equal(c.Params, compact) && c.Queue == created.GetCreated().Queue && sameRetry(c, retry, o.retry.given()) {
				existed = true
				return nil, nil
			}
			return nil, &ExistsError{id}
		}
		if refusal != nil {
			return nil, e.refused(refusal)
		}
		tx := &events.Tx{Appends: []events.Append{{ExecutionID: id, Events: []*pb.Event{created}}}, Schedules: o.schedules}
		eager = e.eagerLock(tx, now)
		return tx, nil
	})
	release() // committed (and counted by the store) or not
	settle(eager, map[string]*pb.ExecutionState{id: st}, err)
	if err != nil {
		return "", false, err
	}
	return id, existed, nil
}

// checkSubmission checks that ffqn may be submitted with params (to component, ""
// for the newest exporter) and returns the function and the parameters compacted, as
// they are stored.
func (e *Engine) checkSubmission(ffqn string, params json.RawMessage, component string) (Function, []byte, error) {
	fn, err := e.reg.route(nil, ffqn, component)
	if err != nil {
		var nf *FunctionNotFoundError
		if errors.As(err, &nf) {
			if _, _, err := events.SplitFFQN(ffqn); err != nil {
				return Function{}, nil, &InvalidArgumentError{err}
			}
		}
		return Function{}, nil, err
	}
	if fn.Component.Config.Type == ActivityStub {
		return Function{}, nil, &InvalidArgumentError{fmt.Errorf("%s is a function of activity stub %q: a workflow submits it, then its result is written with `execution stub`", ffqn, fn.Component.Config.Name)}
	}
	if err := wit.CheckParams(fn.Fn, params); err != nil {
		return Function{}, nil, &InvalidArgumentError{fmt.Errorf("%s: %w", ffqn, err)}
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, params); err != nil {
		return Function{}, nil, &InvalidArgumentError{fmt.Errorf("params: %w", err)}
	}
	return fn, compact.Bytes(), nil
}

// checkParamsSize refuses parameters over Config.MaxParamsBytes, before anything parses
// them.
func (e *Engine) checkParamsSize(params []byte) error {
	if len(params) > e.cfg.MaxParamsBytes {
		return fmt.Errorf("parameters are %d bytes, more than the limit of %d bytes (api.max_params_bytes)", len(params), e.cfg.MaxParamsBytes)
	}
	return nil
}

// checkQueueName refuses a queue name given by a submitter ("" is the default queue).
func checkQueueName(queue string) error {
	if queue != "" && !abi.ValidQueueName(queue) {
		return fmt.Errorf("queue %s: want %s", clip.Quote(queue), abi.QueueNameRule)
	}
	return nil
}

// checkQueues refuses queues that cannot work: a name that is not valid, and components
// sharing a queue with different MaxConcurrency or MaxPending (one executor serves a
// queue, within one bound).
func checkQueues(cfgs []ComponentConfig) error {
	first := map[string]*ComponentConfig{}
	for i := range cfgs {
		c := &cfgs[i]
		if c.Type != ActivityWasm && c.Type != Workflow {
			continue // never run by an executor
		}
		name := c.QueueName()
		if !abi.ValidQueueName(name) {
			return fmt.Errorf("component %q: queue %s: want %s", c.Name, clip.Quote(name), abi.QueueNameRule)
		}
		f := first[name]
		if f == nil {
			first[name] = c
			continue
		}
		if n, m := max(f.MaxConcurrency, 0), max(c.MaxConcurrency, 0); n != m {
			return fmt.Errorf("components %q and %q share queue %q with different max concurrency (%d and %d): a queue runs its components within one bound",
				f.Name, c.Name, name, n, m)
		}
		if n, m := max(f.MaxPending, 0), max(c.MaxPending, 0); n != m {
			return fmt.Errorf("components %q and %q share queue %q with different max pending (%d and %d): a queue admits its components' executions within one bound",
				f.Name, c.Name, name, n, m)
		}
	}
	return nil
}

// Metrics returns where the engine reports, nil if nowhere.
func (e *Engine) Metrics() *metrics.Metrics { return e.cfg.Metrics }

// registerGauges registers the gauges computed at scrape time.
func (e *Engine) registerGauges() {
	m := e.cfg.Metrics
	m.Gauge("obelisk_guest_memory_bytes", "Guest memory held by the instances of the runs in memory (the part of wasm.memory_budget in use).",
		func() float64 { return float64(e.memory.Stats().Used) })
	m.Gauge("obelisk_guest_memory_budget_bytes", "The guest memory budget (wasm.memory_budget).",
		func() float64 { return float64(e.cfg.MemoryBudget) })
	m.Gauge("obelisk_workflow_instances_resident", "Workflow instances parked in memory, waiting for a response (await strategy).",
		func() float64 { return float64(e.resident.count()) })
	if e.cfg.Tracer.Enabled() {
		m.Gauge("obelisk_tracing_span_events_dropped", "Span events (host calls) dropped since the start because their attempt's span reached its limit (tracing.SpanEventLimit).",
			func() float64 { return float64(e.cfg.Tracer.DroppedEvents()) })
	}
	m.GaugeVec("obelisk_queue_pending", "Executions pending in each queue served here (waiting to run, now or later): what exec.max_pending bounds.", "queue",
		func() map[string]float64 {
			counts := make(map[string]float64, len(e.queues))
			for name := range e.queues {
				counts[name] = float64(e.store.PendingStats(name).Pending)
			}
			return counts
		})
	m.GaugeVec("obelisk_executions", "Unfinished executions by status (pending_at, locked, blocked_by_join_set; paused and cancelling also counted apart).", "status",
		func() map[string]float64 {
			counts := map[string]float64{"pending_at": 0, "locked": 0, "blocked_by_join_set": 0, "paused": 0, "cancelling": 0}
			_ = e.store.LiveStates(context.Background(), func(st *pb.ExecutionState) error {
				counts[events.StatusName(st.Status)]++
				if st.Paused {
					counts["paused"]++
				}
				if st.CancelRequested {
					counts["cancelling"]++
				}
				return nil
			})
			return counts
		})
}

func componentTypeName(t pb.ComponentType) string {
	switch t {
	case pb.ComponentType_COMPONENT_TYPE_WORKFLOW:
		return string(Workflow)
	case pb.ComponentType_COMPONENT_TYPE_ACTIVITY_STUB:
		return string(ActivityStub)
	case pb.ComponentType_COMPONENT_TYPE_WEBHOOK_ENDPOINT:
		return string(WebhookEndpoint)
	case pb.ComponentType_COMPONENT_TYPE_ACTIVITY_NATIVE:
		return string(ActivityNative)
	}
	return string(ActivityWasm)
}

// State returns the current state of an execution.
func (e *Engine) State(ctx context.Context, id string) (*pb.ExecutionState, error) {
	return e.store.State(ctx, id)
}

// Store gives read access to the event store (API listings).
func (e *Engine) Store() events.Store { return e.store }

// Components returns the deployed components, by name.
func (e *Engine) Components() []*Component { return e.reg.components }

// RetiredComponents returns the retired versions that this process runs because
// unfinished executions are pinned to them (versions.go), by ID.
func (e *Engine) RetiredComponents() []*Component {
	var out []*Component
	for _, c := range e.reg.retired {
		if !c.dropped.Load() {
			out = append(out, c)
		}
	}
	return out
}

// Function returns the deployed function ffqn and the component a submission of it
// that names none goes to (registry.route: the newest exporter); ok=false when no
// deployed component exports it.
func (e *Engine) Function(ffqn string) (fn Function, ok bool) {
	fn, err := e.reg.route(nil, ffqn, "")
	return fn, err == nil
}

// WaitFinished blocks until the execution has finished or ctx ends, returning the
// latest state either way.
func (e *Engine) WaitFinished(ctx context.Context, id string) (*pb.ExecutionState, error) {
	return e.Follow(ctx, id, func(st *pb.ExecutionState) bool { return st.Status == pb.Status_STATUS_FINISHED })
}

// Follow calls until with the execution's state now and after every change, until it
// returns true or ctx ends.
func (e *Engine) Follow(ctx context.Context, id string, until func(*pb.ExecutionState) bool) (*pb.ExecutionState, error) {
	ch := e.watchers.add(id)
	defer e.watchers.remove(id, ch)
	for {
		st, err := e.store.State(ctx, id)
		if err != nil {
			return nil, err
		}
		if until(st) {
			return st, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return st, ctx.Err()
		case <-e.failed:
			return st, e.failErr
		}
	}
}

// watchers are the API streams following executions.
type watchers struct {
	mu sync.Mutex
	m  map[string]map[chan struct{}]struct{}
}

func (w *watchers) add(id string) chan struct{} {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m[id] == nil {
		w.m[id] = map[chan struct{}]struct{}{}
	}
	w.m[id][ch] = struct{}{}
	return ch
}

func (w *watchers) remove(id string, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.m[id], ch)
	if len(w.m[id]) == 0 {
		delete(w.m, id)
	}
}

func (w *watchers) notify(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.m[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// liveRuns are the runs executing in this process; a lock held by any other run is dead.
type liveRuns struct {
	mu sync.Mutex
	m  map[string]struct{}
}

func (l *liveRuns) add(run string)    { l.mu.Lock(); l.m[run] = struct{}{}; l.mu.Unlock() }
func (l *liveRuns) remove(run string) { l.mu.Lock(); delete(l.m, run); l.mu.Unlock() }
func (l *liveRuns) has(run string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.m[run]
	return ok
}
