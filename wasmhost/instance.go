package wasmhost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// HostHandler answers the host_call ops that wasmhost does not answer itself.
//
// HostCall gets the op name and the whole request JSON (req is a copy the
// handler may keep). It returns the JSON of the ok value (nil means null),
// which must be valid JSON; the guest receives {"ok": resp}. To fail the call
// it returns a [*HostError] (possibly wrapped), which the guest receives as
// {"error": {...}}. Any other error (typically one wrapping [ErrAbort], or a
// context error) stops the guest at once: the instance is aborted and
// [Instance.Run] returns that error in its chain.
//
// HostCall is only called during [Instance.Run], on the goroutine that called
// Run, with Run's ctx (also cancelled by Close); it may block, and the whole
// guest is frozen meanwhile. It is never called during _initialize.
type HostHandler interface {
	HostCall(ctx context.Context, op string, req []byte) (resp []byte, err error)
}

// Replayer is implemented by a [HostHandler] that answers some calls from a recorded
// history (a workflow's replay): a call made while Replaying is true is not recorded
// again as an event of the attempt's span, since the run that made it first did.
type Replayer interface {
	Replaying() bool
}

// HostHandlerFunc adapts a function to [HostHandler].
type HostHandlerFunc func(ctx context.Context, op string, req []byte) ([]byte, error)

// HostCall implements HostHandler.
func (f HostHandlerFunc) HostCall(ctx context.Context, op string, req []byte) ([]byte, error) {
	return f(ctx, op, req)
}

// RunInput is what one run of an instance executes: the input of
// obelisk_v1_run (abi.RunInput; see docs/abi.md).
type RunInput = abi.RunInput

// Instance is one instantiated guest module. It is used from one goroutine at
// a time and runs at most once; Close may be called from any goroutine, also
// during Run (which then stops with [ErrInstanceClosed]).
type Instance struct {
	module *Module
	mod    api.Module
	alloc  api.Function
	run    api.Function
	kind   Kind
	// restored: made from the module's workflow snapshot (see snapshot.go).
	restored bool
	// reused: a restored instance reset after an earlier run (reuse.go).
	reused bool
	// env is what the instance's WASI functions (bound when it was instantiated)
	// read; it moves with the wazero module when the instance is reused (reuse.go).
	env *instEnv
	// snap and linMem: the snapshot a restored instance came from and its memory,
	// so that it can be reset to it and reused.
	snap   *snapshot
	linMem experimental.LinearMemory
	// fromImage: an activity made from the module's activity image (see
	// activity.go).
	fromImage bool
	handler   HostHandler
	http      *Outbound
	logger    *slog.Logger
	logging   RunLogging // for the run (SetLogging)
	logs      LogSink    // logging.Sink while running
	stdout    *switchWriter
	stderr    *tailWriter
	clock     *detClock // workflows
	rand      *detRand  // workflows

	// requestBody is what request_body_read reads (InstanceConfig.RequestBody).
	requestBody []byte

	// Touched only by the goroutine running the guest.
	initializing bool // in _initialize: only the log op
	// watchWASI: being initialised for a snapshot; wasiChanges are the
	// watched WASI functions that succeeded meanwhile (see wasiWatch).
	watchWASI   bool
	wasiChanges []string
	executionID string
	// kept is a host_call response too large for the guest's buffer, waiting for host_take.
	kept []byte
	// pending is the host_call being answered (parked.go).
	pending pendingCall
	// resumed: made by ResumeParked; Run answers its pending call and carries on
	// through resumeFn instead of calling obelisk_v1_run.
	resumed  *resumeState
	resumeFn api.Function
	// streams are the HTTP response bodies the guest reads as they arrive (http.go),
	// closed when the run ends.
	streams    map[int]*httpStream
	nextStream int
	// abortErr is the handler error that aborted the instance.
	abortErr error

	mu        sync.Mutex
	state     instanceState
	cancelRun context.CancelCauseFunc // while running
}

type instanceState int

const (
	stateIdle instanceState = iota
	stateRunning
	stateDone // ran or closed
)

type instanceKey struct{}

// withInstance makes the instance findable by the obelisk_v1 host functions,
// which wazero calls with the ctx given to Call / InstantiateModule.
func withInstance(ctx context.Context, inst *Instance) context.Context {
	return context.WithValue(ctx, instanceKey{}, inst)
}

func instanceFrom(ctx context.Context) *Instance {
	inst, _ := ctx.Value(instanceKey{}).(*Instance)
	return inst
}

// Kind returns the kind the instance was made for.
func (i *Instance) Kind() Kind { return i.kind }

// Run runs one exported function and returns the guest's result, a JSON
// object with exactly one of "ok" and "err". The instance is closed when Run
// returns; a second Run fails.
//
// Errors, to be told apart with errors.As / errors.Is:
//   - the error a [HostHandler] returned to abort the instance (e.g. one
//     wrapping [ErrAbort]), unchanged in the chain;
//   - context.DeadlineExceeded or context.Canceled (and the context's cause)
//     when ctx ended during the run: the guest was killed;
//   - [ErrInstanceClosed] when Close was called, [ErrRuntimeClosed] when the
//     Runtime was closed;
//   - [*TrapError] when the guest failed on its own (trap, exit, bad result).
func (i *Instance) Run(ctx context.Context, in RunInput) (output []byte, err error) {
	i.mu.Lock()
	if i.state != stateIdle {
		i.mu.Unlock()
		return nil, fmt.Errorf("wasmhost: run %s: %w", in.FFQN, ErrInstanceClosed)
	}
	// Close (or Runtime.Close) during the run cancels runCtx: wazero then
	// stops the guest on this goroutine, and the resources are released
	// below, never under the feet of running guest code.
	runCtx, cancel, done, err := i.module.rt.enter(ctx)
	if err != nil {
		i.state = stateDone
		i.mu.Unlock()
		return nil, fmt.Errorf("wasmhost: run %s: %w", in.FFQN, err)
	}
	i.state, i.cancelRun = stateRunning, cancel
	i.mu.Unlock()
	runDone := runCtx.Done()
	i.env.runDone.Store(&runDone)
	i.env.budget.during(runCtx)
	defer func() {
		defer done()
		i.closeStreams()
		i.mu.Lock()
		i.state = stateDone
		i.mu.Unlock()
		// The guest has stopped: its memory leaves the budget before the wazero module
		// can be handed to another instance (reuse).
		i.env.budget.unbind()
		if err == nil && i.reuse() {
			return // the wazero module lives on in a fresh Instance
		}
		if cerr := i.closeModule(context.WithoutCancel(ctx)); cerr != nil && err == nil {
			err = fmt.Errorf("wasmhost: run %s: closing instance: %w", in.FFQN, cerr)
		}
	}()

	if len(in.Params) == 0 {
		in.Params = json.RawMessage("[]")
	}
	input, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("wasmhost: run %s: encoding input: %w", in.FFQN, err)
	}
	i.executionID, i.logs = in.ExecutionID, i.logging.Sink
	runCtx = withInstance(runCtx, i)
	if i.logging.CaptureStdout || i.logging.CaptureStderr {
		defer i.captureOutput(runCtx, i.logging)()
	}

	var res []uint64
	if i.resumed != nil {
		r, err := i.callResumed(runCtx)
		if err != nil {
			return nil, fmt.Errorf("wasmhost: run %s (resumed): %w", in.FFQN, i.classify(ctx, runCtx, err))
		}
		return i.output(in, r)
	}
	res, err = i.alloc.Call(runCtx, uint64(len(input)))
	if err != nil {
		return nil, fmt.Errorf("wasmhost: run %s: %s: %w", in.FFQN, exportAlloc, i.classify(ctx, runCtx, err))
	}
	inPtr := uint32(res[0])
	if !i.mod.Memory().Write(inPtr, input) {
		return nil, fmt.Errorf("wasmhost: run %s: %w", in.FFQN, &TrapError{
			Message: fmt.Sprintf("%s(%d) returned %#x, outside memory", exportAlloc, len(input), inPtr)})
	}
	res, err = i.run.Call(runCtx, uint64(inPtr), uint64(len(input)))
	if err != nil {
		return nil, fmt.Errorf("wasmhost: run %s: %w", in.FFQN, i.classify(ctx, runCtx, err))
	}
	return i.output(in, res[0])
}

// output reads and checks the output obelisk_v1_run returned as res.
func (i *Instance) output(in RunInput, res uint64) ([]byte, error) {
	outPtr, outLen := uint32(res>>32), uint32(res)
	out, ok := i.mod.Memory().Read(outPtr, outLen)
	if !ok {
		return nil, fmt.Errorf("wasmhost: run %s: %w", in.FFQN, &TrapError{
			Message: fmt.Sprintf("%s returned output [%#x, +%d) outside memory", exportRun, outPtr, outLen)})
	}
	out = append([]byte(nil), out...)
	if err := checkOutput(out); err != nil {
		return nil, fmt.Errorf("wasmhost: run %s: %w", in.FFQN, &TrapError{Message: err.Error()})
	}
	return out, nil
}

// checkOutput accepts a JSON object with exactly one member, "ok" or "err".
func checkOutput(out []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(out, &m); err != nil {
		return fmt.Errorf("result is not a JSON object: %w (%s)", err, abbreviate(out))
	}
	_, okOK := m["ok"]
	_, errOK := m["err"]
	if len(m) != 1 || (!okOK && !errOK) {
		return fmt.Errorf(`result must have exactly one of "ok" and "err": %s`, abbreviate(out))
	}
	return nil
}

func abbreviate(b []byte) string {
	const max = 200
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}

// classify turns an error of a wazero call into what Run promises. parent is
// the caller's context, runCtx the one given to wazero (parent, or a child
// that Close cancels with ErrInstanceClosed).
func (i *Instance) classify(parent, runCtx context.Context, err error) error {
	// closedBy is ErrInstanceClosed or ErrRuntimeClosed when a Close stopped the call.
	var closedBy error
	if parent.Err() == nil && runCtx.Err() != nil {
		closedBy = context.Cause(runCtx)
	}
	if i.abortErr != nil {
		if closedBy != nil && errors.Is(i.abortErr, context.Canceled) {
			return closedBy // the handler gave up because Close cancelled its ctx
		}
		return fmt.Errorf("aborted by host: %w", i.abortErr)
	}
	if size := i.env.budgetRefused.Load(); size > 0 && closedBy == nil {
		// The budget refused a growth, maybe after waiting until the run's context ended
		// (which is then also why the guest stopped, if it did not fail on its own
		// first): the budget is the cause, whatever the guest did about it.
		return &TrapError{
			Message: fmt.Sprintf("memory.grow to %s refused: the node's guest memory budget had no room for it", bytesSize(size)),
			Stderr:  i.stderr.String(),
			Err:     fmt.Errorf("%w: %w", ErrMemoryBudget, err),
		}
	}
	if cerr := parent.Err(); cerr != nil {
		if cause := context.Cause(parent); cause != nil && cause != cerr {
			return fmt.Errorf("killed: %w (cause: %w)", cerr, cause)
		}
		return fmt.Errorf("killed: %w", cerr)
	}
	if closedBy != nil {
		return closedBy
	}
	var trap *TrapError
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		trap = newExitTrap(exit.ExitCode(), i.stderr.String(), err)
	} else {
		msg := err.Error()
		var fault *guestFault
		if errors.As(err, &fault) {
			msg = fault.msg
		}
		trap = newTrap(msg, i.stderr.String(), err)
	}
	if i.env.memoryLimitHit.Load() {
		// What the guest did about a failed memory.grow (a Go guest: "fatal error:
		// out of memory") is the consequence; the limit is the cause.
		trap.Message = fmt.Sprintf("memory limit of %s reached: %s", pagesSize(i.module.limitPages), trap.Message)
		trap.Err = fmt.Errorf("%w: %w", ErrMemoryLimit, trap.Err)
	}
	return trap
}

// Close releases the instance. It is idempotent and may be called from any
// goroutine. Closing during Run stops the guest (a blocked handler sees its
// ctx cancelled) and Run, which releases the resources itself, returns
// [ErrInstanceClosed].
func (i *Instance) Close(ctx context.Context) error {
	i.mu.Lock()
	switch i.state {
	case stateDone:
		i.mu.Unlock()
		return nil
	case stateRunning:
		i.cancelRun(ErrInstanceClosed)
		i.mu.Unlock()
		return nil
	}
	i.state = stateDone
	i.mu.Unlock()
	defer i.env.budget.unbind()
	if err := i.closeModule(ctx); err != nil {
		return fmt.Errorf("wasmhost: closing instance of %q: %w", i.module.name, err)
	}
	return nil
}

// closeModule closes the instance's wazero module and releases its linear memory.
//
// wazero alone does not always release it: when the run's context ends while the guest
// is in a host call (a Close, a lock lost, a parked workflow evicted), its watcher marks
// the module closed and leaves the memory for the guest's next step to release, but a
// host call that then fails unwinds the guest without that step, and Close returns early
// on a module already marked. The memory (an image mapping and whatever the guest grew,
// 4 MiB or more outside the Go heap) stayed mapped for the server's life.
func (i *Instance) closeModule(ctx context.Context) error { return closeWithMemory(ctx, i.mod, i.env) }

// closeWithMemory closes mod, a module instantiated with env's allocator, and releases
// its linear memory (see closeModule): every close of an instance's module, also those
// of one still being made, goes through it.
func closeWithMemory(ctx context.Context, mod api.Module, env *instEnv) error {
	err := mod.Close(ctx)
	if env == nil {
		return err
	}
	if m := env.mem; m != nil {
		m.Free()
	}
	return err
}

// CountMemoryIn counts the instance's memory in budget from now on (see [MemoryBudget]):
// it reserves what the memory holds, waiting until ctx ends (then it fails with an error
// wrapping [ErrMemoryBudget], and the instance, which the caller still closes, is in no
// budget); a run reserves what each
// memory.grow adds, waiting until the run's ctx ends (then memory.grow fails, and the
// run's [*TrapError] wraps ErrMemoryBudget); the end of the run, or Close, releases it
// all. It is called at most once, before Run.
func (i *Instance) CountMemoryIn(ctx context.Context, budget MemoryBudget) error {
	if err := i.env.budget.bind(ctx, budget, i.MemorySize()); err != nil {
		return fmt.Errorf("wasmhost: instance of %q: %w", i.module.name, err)
	}
	return nil
}

// MemorySize returns the bytes the instance's linear memory holds now (its size, not
// the pages the machine has touched).
func (i *Instance) MemorySize() uint64 {
	if mem := i.mod.Memory(); mem != nil {
		return uint64(mem.Size())
	}
	return 0
}

// tailWriter forwards to w (if any, set after _initialize) and keeps the last
// tailSize bytes written, and the first line that starts a Go panic or fatal
// error: a Go runtime out of memory prints "fatal error: out of memory" and
// then kilobytes of goroutine traces, which push that line out of the tail.
type tailWriter struct {
	w   io.Writer
	mu  sync.Mutex
	buf []byte
	// line is the line being written, cut at maxLineSize bytes; fatal is the
	// first complete line that starts a panic or fatal error ("" = none yet).
	line  []byte
	fatal string
}

const (
	tailSize    = 4 << 10
	maxLineSize = 512
)

// tail returns a copy of the tail kept.
func (t *tailWriter) tail() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.buf)
}

func (t *tailWriter) set(w io.Writer) {
	t.mu.Lock()
	t.w = w
	t.mu.Unlock()
}

// reset makes the writer hold tail, as after writing it from the start.
func (t *tailWriter) reset(tail []byte) {
	t.mu.Lock()
	t.buf = slices.Clone(tail)
	t.line, t.fatal = t.line[:0], ""
	t.mu.Unlock()
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	if len(p) >= tailSize {
		t.buf = append(t.buf[:0], p[len(p)-tailSize:]...)
	} else {
		if drop := len(t.buf) + len(p) - tailSize; drop > 0 {
			t.buf = append(t.buf[:0], t.buf[drop:]...)
		}
		t.buf = append(t.buf, p...)
	}
	t.scan(p)
	w := t.w
	t.mu.Unlock()
	if w == nil {
		return len(p), nil
	}
	return w.Write(p)
}

// scan looks for the first fatal line in p, which may hold any part of a line:
// the Go runtime writes a message in several pieces.
func (t *tailWriter) scan(p []byte) {
	for len(p) > 0 && t.fatal == "" {
		part, rest, complete := bytes.Cut(p, []byte("\n"))
		if room := maxLineSize - len(t.line); room > 0 {
			t.line = append(t.line, part[:min(len(part), room)]...)
		}
		if !complete {
			return
		}
		if l := strings.TrimSpace(string(t.line)); isFatalLine(l) {
			t.fatal = l
		}
		t.line, p = t.line[:0], rest
	}
}

// String returns the tail, preceded by the first fatal line when the tail no
// longer holds it.
func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.fatal != "" && !bytes.Contains(t.buf, []byte(t.fatal)) {
		return t.fatal + "\n[...]\n" + string(t.buf)
	}
	return string(t.buf)
}

// sleep is an activity's nanosleep: real time, cut short when the run's context ends.
func (env *instEnv) sleep(ns int64) {
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	var done <-chan struct{}
	if p := env.runDone.Load(); p != nil {
		done = *p
	}
	select {
	case <-t.C:
	case <-done:
	}
}
