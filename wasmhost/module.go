package wasmhost

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/obelisk-go/obelisk/wasmhost/internal/wasmbin"
	"github.com/obelisk-go/obelisk/wasmhost/wit"
)

// Module is a compiled guest module that passed the ABI checks. It is safe
// for concurrent use: any number of goroutines may Instantiate it at once.
type Module struct {
	rt   *Runtime
	name string
	// compiled is the compiled code, nil while it is not loaded: instantiate through
	// code, which loads it (see load.go). Only Compile may read the field directly.
	compiled wazero.CompiledModule
	codeMu   sync.Mutex // guards compiled after Compile
	// reload loads compiled while it is nil, and the variant's data segments with it.
	reload func(context.Context) (loaded, error)
	// variant, when set, says that compiled is the module's snapshot variant
	// (wasmbin.SnapshotVariant: no data section, no start section, mutable globals
	// exported) rather than the module itself, and holds what the variant lacks. Every
	// kind of instance is made from it: a plain one by writing the data segments and
	// calling the start function and _initialize itself, as instantiating the module
	// would (initVariant); restored ones and ones from an activity image as always.
	// Its Wasm is nil; its Data is nil while compiled is (read it through loadedVariant,
	// guarded by codeMu). nil when the module could not be rewritten, or when nothing
	// restores or maps images ([wasm] settings): compiled is then the module itself,
	// and it gets neither a snapshot nor an activity image. noVariant says why.
	variant   *wasmbin.Variant
	noVariant error
	wit       []wit.File
	witErr    error
	// limitPages caps the memory of its instances (MemoryLimitPages); 0 = no cap but the runtime's.
	limitPages uint32
	// minPages is the declared minimum of its memory, recorded at Compile.
	minPages uint32
	// digest is the wasmstore digest of the module's bytes as given to Compile, which
	// names its kept workflow snapshot (snapfile.go); "" without a cache dir.
	digest string

	ctx    context.Context // cancelled by Close (and Runtime.Close): stops the pools
	cancel context.CancelFunc
	pools  pools

	snap preparation[snapshot]      // the workflow snapshot (snapshot.go)
	act  preparation[activityImage] // the activity image (activity.go)

	// Instances reset for reuse (reuse.go), by kind.
	freeWorkflows, freeActivities chan *Instance
}

// Name returns the name given to [Runtime.Compile].
func (m *Module) Name() string { return m.name }

// WIT returns the WIT files embedded in the module's obelisk-wit custom
// section, as [wit.ExtractFromWasm] reads them (the error wraps
// [wit.ErrNoSection] when there is none). The caller must not modify them.
func (m *Module) WIT() ([]wit.File, error) {
	if m.witErr != nil {
		return nil, fmt.Errorf("wasmhost: module %q: %w", m.name, m.witErr)
	}
	return m.wit, nil
}

// Close releases the compiled code and the instances prepared in advance. Instances
// already handed out keep working.
func (m *Module) Close(ctx context.Context) error {
	m.cancel()
	m.drainFree()
	m.snap.take() // and what they made goes with the module (memory images close when collected)
	m.act.take()
	m.codeMu.Lock()
	defer m.codeMu.Unlock()
	if m.compiled == nil {
		return nil
	}
	if err := m.compiled.Close(ctx); err != nil {
		return fmt.Errorf("wasmhost: closing module %q: %w", m.name, err)
	}
	m.compiled = nil
	return nil
}

// Kind is the kind of component an instance runs; it decides the WASI
// environment and which host operations wasmhost answers itself.
type Kind int

const (
	// KindActivity: real clock, real randomness, real sleep; the http op is
	// answered by wasmhost under [InstanceConfig.HTTP].
	KindActivity Kind = iota + 1
	// KindWorkflow: deterministic clock, random source and sleep (see
	// docs/abi.md "The workflow sandbox"); no http.
	KindWorkflow
)

// String returns "activity" or "workflow".
func (k Kind) String() string {
	switch k {
	case KindActivity:
		return "activity"
	case KindWorkflow:
		return "workflow"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// InstanceConfig configures one instance.
type InstanceConfig struct {
	// Kind must be set.
	Kind Kind
	// Handler answers every host_call op wasmhost does not answer itself
	// (all but log, and http for activities) once _initialize has finished.
	// nil answers them with a HostError of kind unsupported_op.
	Handler HostHandler
	// HTTP sends an activity's outgoing HTTP requests under its policy (one
	// Outbound per component, shared by its instances); nil denies every request.
	// Ignored for workflows.
	HTTP *Outbound
	// Seed seeds a workflow's deterministic random source (random_get)
	// after _initialize.
	Seed uint64
	// ClockStart is where a workflow's deterministic clock stands after
	// _initialize: the creation time of the execution. It must be after the
	// Unix epoch.
	ClockStart time.Time
	// Stdout and Stderr receive what the guest writes to fds 1 and 2 after
	// _initialize; nil discards it. The last few KiB of stderr are kept
	// anyway for [TrapError.Stderr].
	Stdout, Stderr io.Writer
	// Logger receives the guest's log op records, with attribute
	// execution_id added. nil means the Runtime's logger.
	Logger *slog.Logger
	// RequestBody is what the request_body_read import reads: the body of the
	// webhook request the instance handles. The instance does not modify it.
	RequestBody []byte
}

// Instantiate makes a fresh instance of the module, runs its _initialize and
// applies cfg. The instance shares nothing with other instances. The caller
// must Close it (or Run it, which closes it when it returns).
//
// _initialize does not depend on cfg: host calls it makes get only the log op
// (on the runtime's logger), and a workflow initialises with a fixed clock and
// random seed, switching to cfg.ClockStart and cfg.Seed before Instantiate
// returns. So every workflow instance of a module starts from the same state,
// and instances can be prepared ahead of time without changing what a replay
// sees. ctx bounds _initialize.
//
// With [Config.PoolSize] > 0 the instance usually comes ready-made from a
// pool refilled in the background. A workflow instance is usually restored
// from a snapshot of an initialised instance (made in the background after
// the first workflow Instantiate of the module) instead of running
// _initialize; it is indistinguishable from one that ran it. See
// [Config.DisableWorkflowSnapshots].
func (m *Module) Instantiate(ctx context.Context, cfg InstanceConfig) (*Instance, error) {
	if err := checkInstanceConfig(cfg); err != nil {
		return nil, fmt.Errorf("wasmhost: instantiating module %q: %w", m.name, err)
	}
	var inst *Instance
	if p := m.poolFor(cfg.Kind); p != nil {
		inst = p.take()
	}
	if inst == nil {
		var err error
		if inst, err = m.newInstance(ctx, cfg.Kind); err != nil {
			return nil, fmt.Errorf("wasmhost: instantiating module %q: %w", m.name, err)
		}
	}
	inst.configure(cfg)
	return inst, nil
}

func checkInstanceConfig(cfg InstanceConfig) error {
	switch cfg.Kind {
	case KindActivity:
	case KindWorkflow:
		if cfg.ClockStart.IsZero() || cfg.ClockStart.UnixNano() <= 0 {
			return fmt.Errorf("workflow ClockStart %v must be after the Unix epoch", cfg.ClockStart)
		}
	default:
		return fmt.Errorf("invalid instance kind %v", cfg.Kind)
	}
	return nil
}

// newInstance makes an initialised instance, independently of any execution:
// a workflow instance from the module's snapshot when there is one, an
// activity instance from the module's activity image when there is one
// (running _initialize), any other by instantiating the module and running
// _initialize.
func (m *Module) newInstance(ctx context.Context, kind Kind) (*Instance, error) {
	if inst := m.takeFree(kind); inst != nil {
		return inst, nil
	}
	if kind == KindActivity && !m.rt.noActivitySnapshots {
		s := m.workflowSnapshot()
		switch {
		case s != nil && s.activityOK:
			inst, err := m.restore(ctx, s, KindActivity)
			if err == nil {
				return inst, nil
			}
			if ctx.Err() != nil || m.ctx.Err() != nil || errors.Is(err, ErrRuntimeClosed) {
				return nil, err
			}
			m.rt.logger.Warn("wasmhost: restoring an activity instance from the snapshot failed; initialising it afresh",
				"module", m.name, "err", err)
			return m.initInstance(ctx, kind)
		case s == nil && m.snap.state.Load() != snapshotFailed:
			// Being made: the plain path meanwhile (not the activity image, which the
			// snapshot will most likely make unnecessary).
			return m.initInstance(ctx, kind)
		}
	}
	if kind == KindActivity {
		if a := m.activityImageFor(); a != nil {
			inst, fallback, err := m.initFromImage(ctx, a)
			if !fallback {
				return inst, err
			}
			m.rt.logger.Warn("wasmhost: instantiating an activity from its memory image failed; instantiating the module",
				"module", m.name, "err", err)
		}
	}
	if kind == KindWorkflow && !m.rt.noSnapshots {
		if s := m.workflowSnapshot(); s != nil {
			inst, err := m.restore(ctx, s, KindWorkflow)
			if err == nil {
				return inst, nil
			}
			if ctx.Err() != nil || m.ctx.Err() != nil || errors.Is(err, ErrRuntimeClosed) {
				return nil, err // not the snapshot's fault: initialising would fail too
			}
			m.rt.logger.Warn("wasmhost: restoring a workflow instance from its snapshot failed; initialising it afresh",
				"module", m.name, "err", err)
		}
	}
	return m.initInstance(ctx, kind)
}

// newShell returns an instance of the given kind with its host-side state as
// it is before _initialize, and no module yet.
func (m *Module) newShell(kind Kind) *Instance {
	inst := &Instance{
		module: m,
		kind:   kind,
		logger: m.rt.logger,
		env:    &instEnv{},
		stdout: &switchWriter{},
		stderr: &tailWriter{},
	}
	if kind == KindWorkflow {
		inst.clock = &detClock{next: initClockStart}
		inst.rand = &detRand{src: newChaCha8(initSeed, initSeedDomain)}
	}
	return inst
}

// moduleConfig is the wazero configuration of the instance's module: its
// kind's WASI environment, and _initialize as start function.
func (i *Instance) moduleConfig() wazero.ModuleConfig {
	mc := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions(exportInit).
		WithStdout(i.stdout).
		WithStderr(i.stderr)
	switch i.kind {
	case KindActivity:
		mc = mc.WithSysWalltime().
			WithSysNanotime().
			WithNanosleep(i.env.sleep).
			WithRandSource(crand.Reader)
		if i.env.monoBase != 0 {
			env := i.env
			mc = mc.WithNanotime(func() int64 { return env.monoBase + int64(time.Since(env.monoStart)) }, 1)
		}
	case KindWorkflow:
		mc = mc.WithWalltime(i.clock.walltime, clockResolution).
			WithNanotime(i.clock.nanotime, clockResolution).
			WithNanosleep(i.clock.sleep).
			WithOsyield(func() {}).
			WithRandSource(i.rand)
	}
	return mc
}

// initInstance instantiates the module and runs _initialize.
func (m *Module) initInstance(ctx context.Context, kind Kind) (*Instance, error) {
	inst := m.newShell(kind)
	ictx, _, done, err := m.rt.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	ictx = m.withAllocator(ictx, m.rt.alloc, inst, nil)
	if m.variant != nil {
		if fallback, err := m.initVariant(ctx, withInstance(ictx, inst), inst, true); err != nil {
			if fallback { // not classified yet: nothing to fall back to here
				err = inst.classify(ctx, ictx, err)
			}
			return nil, err
		}
		return inst, nil
	}
	compiled, err := m.code(ictx)
	if err != nil {
		return nil, err
	}
	inst.initializing = true
	mod, err := m.rt.rt.InstantiateModule(withInstance(ictx, inst), compiled, inst.moduleConfig())
	inst.initializing = false
	if err != nil {
		return nil, inst.classify(ctx, ictx, err)
	}
	inst.mod = mod
	inst.alloc = mod.ExportedFunction(exportAlloc)
	inst.run = mod.ExportedFunction(exportRun)
	return inst, nil
}

// configure applies what is specific to one execution to an initialised
// instance.
func (i *Instance) configure(cfg InstanceConfig) {
	i.handler = cfg.Handler
	i.http = nil
	if cfg.Kind == KindActivity {
		i.http = cfg.HTTP
	}
	i.requestBody = cfg.RequestBody
	if cfg.Logger != nil {
		i.logger = cfg.Logger
	}
	i.stdout.set(cfg.Stdout)
	i.stderr.set(cfg.Stderr)
	if cfg.Kind == KindWorkflow {
		i.clock.next = max(cfg.ClockStart.UnixNano(), i.clock.next)
		i.rand.src = newChaCha8(cfg.Seed, runSeedDomain)
	}
}

// The fixed clock and seed a workflow's _initialize sees.
const (
	initClockStart = int64(1_000_000_000) // 1970-01-01T00:00:01Z; any real ClockStart is later
	initSeed       = 0
	initSeedDomain = "obelisk workflow init"
	runSeedDomain  = "obelisk workflow random"
)

// clockResolution is what clock_res_get reports: the deterministic clock's step.
const clockResolution = 1000 // ns

// detClock is a workflow's deterministic clock: every read (wall or monotonic)
// returns the current value and advances it by 1 µs, so it never stands
// still and never returns 0; a sleep advances it by the slept duration. It is
// only used from the goroutine running the instance.
type detClock struct{ next int64 }

func (c *detClock) read() int64 {
	v := c.next
	c.next += clockResolution
	return v
}

func (c *detClock) walltime() (sec int64, nsec int32) {
	v := c.read()
	return v / 1e9, int32(v % 1e9)
}

func (c *detClock) nanotime() int64 { return c.read() }

func (c *detClock) sleep(ns int64) {
	if ns > 0 {
		c.next += ns
	}
}

// detRand is a workflow's deterministic random source: ChaCha8, whose output
// is fixed by its specification (stable across Go releases), keyed by the
// seed. The key is replaced after _initialize.
type detRand struct{ src *rand.ChaCha8 }

func (d *detRand) Read(p []byte) (int, error) { return d.src.Read(p) }

func newChaCha8(seed uint64, domain string) *rand.ChaCha8 {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:8], seed)
	copy(key[8:], domain)
	return rand.NewChaCha8(key)
}

// switchWriter forwards to w, which is set after _initialize; nil discards.
type switchWriter struct{ w io.Writer }

func (s *switchWriter) set(w io.Writer) { s.w = w }

func (s *switchWriter) Write(p []byte) (int, error) {
	if s.w == nil {
		return len(p), nil
	}
	return s.w.Write(p)
}
