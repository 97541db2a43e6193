// Package crashsim proves a workflow crash-safe (`obelisk test crash-sim`): it runs one
// execution on a scratch store crash-free, for the reference result and history, then
// once per commit of that run, from scratch, crashing the engine right after its k-th
// commit and finishing the execution in a new engine on what the store kept, and
// compares each run's result and history (Execution) with the reference.
//
// The crash is injected at the store's one write path (actors.Config.StoreBeforeCommit):
// after commit k every later commit is refused, which fails the store and so stops the
// engine, as a crash would, without any further write. Then the store's file system (an
// in-memory Pebble vfs) is cloned as a crash leaves it, only what was synced, and a new
// engine starts on the clone: its start-up releases the locks of the dead engine's runs
// at once (as `server run` does after a crash), so nothing waits for a lock to expire.
package crashsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
	"github.com/obelisk-go/obelisk/verify"
)

// Options configure a simulation.
type Options struct {
	// Engine configures every engine of the simulation; each run sets its DataDir (a
	// temporary folder), StoreFS, StoreBeforeCommit, MaxDelay and Modules (one for
	// the whole simulation). CacheDir must be set: the compilation cache.
	Engine actors.Config
	FFQN   string
	Params json.RawMessage
	// MaxDelay shortens every durable delay of the workflows (actors.Config.MaxDelay);
	// 0 keeps them as requested.
	MaxDelay time.Duration
	// Timeout bounds how long each run waits for the execution's tree to finish (0:
	// 2 minutes).
	Timeout time.Duration
	// Progress, if set, is told of the reference run, then of each crash point as it is
	// checked.
	Progress func(r *Report, p *Point)
}

// Report is a simulation's outcome.
type Report struct {
	FFQN   string          `json:"ffqn"`
	Params json.RawMessage `json:"params"`
	// ExecutionID is the top-level execution's ID, the same in every run.
	ExecutionID string `json:"execution_id"`
	// Commits is the number of store commits (transactions) of the crash-free run: the
	// crash points. ReferenceCommits says what each wrote (describeCommit).
	Commits          int      `json:"commits"`
	ReferenceCommits []string `json:"reference_commits"`
	// Result and Executions are the crash-free run's: the reference.
	Result     json.RawMessage `json:"result"`
	Executions []Execution     `json:"executions"`
	Points     []Point         `json:"points"`
	// OK: every crash point matched the reference.
	OK bool `json:"ok"`
	// FirstDifference is the first crash point that differed (0: none).
	FirstDifference int `json:"first_difference,omitempty"`
}

// Point is one crash point's outcome.
type Point struct {
	// K: the engine crashed right after its K-th commit.
	K int `json:"k"`
	// Commit says what the K-th commit wrote in this run (describeCommit).
	Commit string `json:"commit"`
	// Crashed is false when this run finished its tree in fewer commits than the
	// reference (commits grouped otherwise): it was compared without a crash.
	Crashed bool `json:"crashed"`
	OK      bool `json:"ok"`
	// Difference says how the run differed from the reference, if it did.
	Difference string          `json:"difference,omitempty"`
	Result     json.RawMessage `json:"result,omitempty"`
}

// BadInputError: the function or its parameters were refused; nothing ran.
type BadInputError struct{ Err error }

func (e *BadInputError) Error() string { return e.Err.Error() }
func (e *BadInputError) Unwrap() error { return e.Err }

// NondeterministicError: two crash-free runs did not agree, so crashes cannot be told
// apart from whatever else makes runs differ.
type NondeterministicError struct{ Difference string }

func (e *NondeterministicError) Error() string {
	return "two crash-free runs differ, so the simulation cannot judge crashes: " + e.Difference +
		" (does an activity return something else on every run, or the outcome depend on timing?)"
}

// errCrash is how the gate refuses the commit after the crash point.
var errCrash = errors.New("crash injected by the simulation")

// Run runs the simulation. An error means it could not run (a bad input, matching
// *BadInputError, or a reference run that failed); a crash point that differs is in the
// report.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	// Only the components FFQN may need: each engine's start reads and checks every
	// component it deploys, and the first one loads each module.
	var exported bool
	if o.Engine.Components, exported = neededComponents(o.Engine.Components, o.FFQN); !exported {
		return nil, &BadInputError{&actors.FunctionNotFoundError{FFQN: o.FFQN}}
	}
	// One wasm runtime for every engine: each component is compiled or loaded once,
	// not once per crash point.
	modules, err := actors.NewModules(ctx, o.Engine)
	if err != nil {
		return nil, err
	}
	defer modules.Close(ctx)
	o.Engine.Modules = modules
	// One data directory too (the component versions' records and files): each run's
	// store is a new one, in memory, so none of it is about an execution.
	dir, err := os.MkdirTemp("", "obelisk-crash-sim-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	s := &sim{o: o, id: events.NewExecutionID(time.Now()), dir: dir}
	rep := &Report{FFQN: o.FFQN, Params: o.Params, ExecutionID: s.id, OK: true}
	// Two crash-free runs: the first loads every module and warms the engine (a cold
	// run takes other steps: no eager dispatch while a module loads), the second is
	// the reference. They must agree, or the workflow's outcome depends on something
	// else than crashes (timing, an activity that differs from run to run), which the
	// simulation could not tell apart.
	warm, err := s.run(ctx, 0)
	if err != nil {
		return nil, err
	}
	if warm.err != "" {
		return nil, fmt.Errorf("the crash-free run: %s", warm.err)
	}
	ref, err := s.run(ctx, 0)
	if err != nil {
		return nil, err
	}
	if ref.err != "" {
		return nil, fmt.Errorf("the second crash-free run: %s", ref.err)
	}
	if d := difference(warm.tree, ref.tree); d != "" {
		return nil, &NondeterministicError{Difference: d}
	}
	rep.Commits = len(ref.commits)
	rep.ReferenceCommits = ref.commits
	rep.Executions = ref.tree
	rep.Result = ref.tree[0].Result
	if o.Progress != nil {
		o.Progress(rep, nil)
	}
	for k := 1; k <= rep.Commits; k++ {
		r, err := s.run(ctx, k)
		if err != nil {
			return nil, fmt.Errorf("crash point %d: %w", k, err)
		}
		p := Point{K: k, Crashed: r.crashed, Difference: r.err}
		if len(r.commits) >= k {
			p.Commit = r.commits[k-1]
		}
		if p.Difference == "" {
			p.Difference = difference(ref.tree, r.tree)
			p.Result = r.tree[0].Result
		}
		p.OK = p.Difference == ""
		if !p.OK && rep.OK {
			rep.OK, rep.FirstDifference = false, k
		}
		rep.Points = append(rep.Points, p)
		if o.Progress != nil {
			o.Progress(rep, &rep.Points[len(rep.Points)-1])
		}
	}
	return rep, nil
}

type sim struct {
	o   Options
	id  string
	dir string // the engines' data directory
}

// outcome is one run's: its tree, or err saying why it has none.
type outcome struct {
	tree    []Execution
	commits []string // what each commit before the crash wrote
	crashed bool
	err     string
}

// gate counts the commits of a run's first engine and refuses every one after the
// after-th (0: none).
type gate struct {
	after int
	rel   func(string) string

	mu      sync.Mutex
	commits []string
	crashed bool
}

func (g *gate) check(states []*pb.ExecutionState) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.crashed || g.after > 0 && len(g.commits) >= g.after {
		g.crashed = true
		return errCrash
	}
	g.commits = append(g.commits, describeCommit(states, g.rel))
	return nil
}

// crash makes the gate refuse every commit from now on.
func (g *gate) crash() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.crashed = true
}

func (g *gate) state() ([]string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.commits...), g.crashed
}

// run runs the execution from scratch, crashing the engine after commit after (0:
// never). An error means the simulation cannot go on; a run that goes wrong otherwise
// (the recovery does not finish) is an outcome with err.
func (s *sim) run(ctx context.Context, after int) (*outcome, error) {
	dir := s.dir
	mem := vfs.NewCrashableMem()
	if err := makeSyncedDir(mem, actors.StoreDir(dir)); err != nil {
		return nil, err
	}
	g := &gate{after: after, rel: relativizer(s.id)}
	e, err := actors.New(ctx, s.config(dir, mem, g.check))
	if err != nil {
		if _, crashed := g.state(); !crashed {
			return nil, fmt.Errorf("start the engine: %w", err)
		}
		e = nil // it crashed while starting: recover below
	}
	if e != nil {
		stopped := true // by the refused commit, as opposed to torn down below
		err := s.submit(ctx, e)
		if err == nil {
			_, err = s.waitTree(ctx, e)
		}
		commits, crashed := g.state()
		if !crashed && after > 0 && len(commits) >= after {
			// Commit after was the run's last: crash now, refusing whatever else the
			// engine would commit while it is torn down.
			g.crash()
			crashed, stopped = true, false
		}
		if !crashed {
			defer e.Close(ctx)
			if err != nil {
				var bad *BadInputError
				if errors.As(err, &bad) || after == 0 {
					return nil, err
				}
				return &outcome{commits: commits, err: err.Error()}, nil
			}
			tree, err := readTree(ctx, e.Store(), s.id)
			if err != nil {
				return nil, err
			}
			return &outcome{tree: tree, commits: commits}, nil
		}
		if stopped {
			select { // the store failed: the engine stops by itself
			case <-e.Failed():
			case <-time.After(s.o.Timeout):
				return nil, fmt.Errorf("the engine did not stop after the injected crash")
			}
		}
	}
	// What a crash leaves on the disk: what was synced. Taken before the dead engine is
	// closed, which writes nothing to the store but is not part of a crash.
	img := mem.CrashClone(vfs.CrashCloneCfg{})
	if e != nil {
		e.Close(ctx)
	}
	commits, _ := g.state()
	out := &outcome{commits: commits, crashed: true}
	// What the crash left must be a consistent store, before any recovery touches it:
	// every state the fold of its events, every hash chain whole, every workflow
	// replaying (as `obelisk verify` checks a stopped server's store).
	if failures, err := verifyStore(ctx, s.config(dir, img, nil)); err != nil {
		return nil, fmt.Errorf("verify the store after the crash: %w", err)
	} else if failures != "" {
		out.err = "the store after the crash: " + failures
		return out, nil
	}
	r, err := actors.New(ctx, s.config(dir, img, nil))
	if err != nil {
		return nil, fmt.Errorf("restart after the crash: %w", err)
	}
	defer r.Close(ctx)
	// The image must hold every commit acknowledged before the crash: the store's
	// first commit creates the execution.
	if len(commits) > 0 {
		if _, err := r.State(ctx, s.id); err != nil {
			return nil, fmt.Errorf("after the crash, the store lost the %d commits made before it: %w", len(commits), err)
		}
	}
	// Again, idempotently: the crash may have come before the submission's commit.
	if err := s.submit(ctx, r); err != nil {
		out.err = fmt.Sprintf("submit after the crash: %v", err)
		return out, nil
	}
	if _, err := s.waitTree(ctx, r); err != nil {
		out.err = err.Error()
		return out, nil
	}
	if out.tree, err = readTree(ctx, r.Store(), s.id); err != nil {
		return nil, err
	}
	return out, nil
}

// verifyStore checks the store of cfg, read-only, as `obelisk verify` does and says what
// failed ("" if nothing did).
func verifyStore(ctx context.Context, cfg actors.Config) (string, error) {
	e, err := actors.OpenOffline(ctx, cfg)
	if err != nil {
		return "", err
	}
	defer e.Close(ctx)
	var failures []string
	_, err = e.Verify(ctx, func(f verify.Failure) error {
		failures = append(failures, fmt.Sprintf("%s %s: %s", f.ExecutionID, f.Check, f.Error))
		return nil
	})
	return strings.Join(failures, "; "), err
}

// config is the engine's for a run on the data directory dir and store file system fs.
func (s *sim) config(dir string, fs vfs.FS, gate func([]*pb.ExecutionState) error) actors.Config {
	cfg := s.o.Engine
	cfg.DataDir, cfg.StoreFS, cfg.StoreBeforeCommit, cfg.MaxDelay = dir, fs, gate, s.o.MaxDelay
	return cfg
}

func (s *sim) submit(ctx context.Context, e *actors.Engine) error {
	_, _, err := e.Submit(ctx, s.id, s.o.FFQN, s.o.Params)
	var nf *actors.FunctionNotFoundError
	var bad *actors.InvalidArgumentError
	if errors.As(err, &nf) || errors.As(err, &bad) {
		return &BadInputError{err}
	}
	return err
}

// waitTree waits, at most Options.Timeout, until the execution and every descendant
// have finished, and returns how many there are.
func (s *sim) waitTree(ctx context.Context, e *actors.Engine) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	rel := relativizer(s.id)
	n := 0
	pending := []string{s.id}
	for len(pending) > 0 {
		id := pending[0]
		pending = pending[1:]
		st, err := e.WaitFinished(ctx, id)
		if err != nil {
			if st != nil && ctx.Err() != nil {
				return n, fmt.Errorf("execution %s did not finish within %s: %s", rel(id), s.o.Timeout, describeState(st))
			}
			return n, fmt.Errorf("wait for %s: %w", rel(id), err)
		}
		n++
		children, err := e.Store().Children(ctx, id)
		if err != nil {
			return n, fmt.Errorf("children of %s: %w", rel(id), err)
		}
		pending = append(pending, children...)
	}
	return n, nil
}

func describeState(st *pb.ExecutionState) string {
	d := events.StatusName(st.Status)
	if st.LastFailure != "" {
		d += ", last failure: " + st.LastFailure
	}
	return d
}

// makeSyncedDir creates the folder path in fs and syncs it and every folder above it, so
// that a crash image of fs has it: the store syncs what it creates in its folder, not
// the folders above it, which a server's data directory has before it starts.
func makeSyncedDir(fs vfs.FS, path string) error {
	if err := fs.MkdirAll(path, 0o755); err != nil {
		return err
	}
	for p := path; ; p = filepath.Dir(p) {
		d, err := fs.OpenDir(p)
		if err != nil {
			return err
		}
		err = errors.Join(d.Sync(), d.Close())
		if err != nil {
			return fmt.Errorf("sync %s: %w", p, err)
		}
		if parent := filepath.Dir(p); parent == p {
			return nil
		}
	}
}
