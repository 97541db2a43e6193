package wasmhost

import (
	"errors"
	"fmt"
	"strings"
)

// ErrAbort is a sentinel a [HostHandler] wraps in the error it returns to stop
// the guest, e.g. fmt.Errorf("%w: nondeterminism detected: ...", ErrAbort).
// Any error returned by a handler that is not a [*HostError] aborts the
// instance the same way; ErrAbort only makes the intent explicit. Run returns
// the handler's error in its chain, so errors.Is / errors.As on the result of
// [Instance.Run] see exactly what the handler returned.
var ErrAbort = errors.New("wasmhost: instance aborted by the host")

// ErrInstanceClosed is returned by [Instance.Run] when the instance was closed,
// before or during the run.
var ErrInstanceClosed = errors.New("wasmhost: instance closed")

// ErrRuntimeClosed is returned by calls on a closed [Runtime], and by
// Instantiate and Run when the runtime was closed while they ran.
var ErrRuntimeClosed = errors.New("wasmhost: runtime closed")

// HostError is an error answer to one host call. It is returned to the guest
// as {"error": {"kind": Kind, "message": Message}} and the guest continues.
// Kind is one of the kinds of abi.Kinds (package sdk/go/obelisk/abi).
// A [HostHandler] returns one (possibly wrapped) to fail a call without
// stopping the guest.
type HostError struct {
	Kind    string
	Message string
}

// Error implements error.
func (e *HostError) Error() string {
	return fmt.Sprintf("host call error %s: %s", e.Kind, e.Message)
}

// TrapError reports that the guest failed on its own: a WebAssembly trap
// (e.g. unreachable, which is what an escaping Go panic becomes when the
// runtime cannot exit), an exit through proc_exit (a Go panic or os.Exit), an
// invalid pointer handed to a host function, or a malformed result. For an
// activity it is a failed attempt; for a workflow an execution failure.
type TrapError struct {
	// Message describes the failure: the wazero error, or for an exit the
	// exit code and the most telling line of stderr (e.g. "panic: boom").
	Message string
	// Exited is true when the guest called proc_exit; ExitCode is then its code.
	Exited   bool
	ExitCode uint32
	// Stderr is the tail (at most a few KiB) of what the guest wrote to stderr,
	// preceded by the first Go "panic:" or "fatal error:" line when the tail has lost it.
	Stderr string
	// Err is the underlying error, if any.
	Err error
}

// Error implements error.
func (e *TrapError) Error() string {
	return "guest trapped: " + e.Message
}

// Unwrap returns the underlying error.
func (e *TrapError) Unwrap() error { return e.Err }

// newTrap describes a trap by the first line of the wazero error (e.g. "wasm
// error: unreachable"; the wasm stack trace stays in Err) and, when the guest
// said why on stderr (a Go panic prints there before aborting), that line.
func newTrap(msg, stderr string, err error) *TrapError {
	msg, _, _ = strings.Cut(msg, "\n")
	if line := tellingLine(stderr); line != "" {
		msg += ": " + line
	}
	return &TrapError{Message: msg, Stderr: stderr, Err: err}
}

func newExitTrap(code uint32, stderr string, err error) *TrapError {
	msg := fmt.Sprintf("exit code %d", code)
	if line := tellingLine(stderr); line != "" {
		msg += ": " + line
	}
	return &TrapError{Message: msg, Exited: true, ExitCode: code, Stderr: stderr, Err: err}
}

// tellingLine picks the line of a stderr tail that best explains an exit: the
// first Go "panic:" or "fatal error:" line (what went wrong first; later ones
// are its consequences), otherwise the last non-empty line.
func tellingLine(stderr string) string {
	lines := strings.Split(stderr, "\n")
	for _, l := range lines {
		if l = strings.TrimSpace(l); isFatalLine(l) {
			return l
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l != "" && !strings.HasPrefix(l, "goroutine ") && !strings.HasPrefix(l, "[") {
			return l
		}
	}
	return ""
}

// isFatalLine reports whether a (trimmed) line of stderr starts a Go panic or
// fatal error.
func isFatalLine(l string) bool {
	return strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ")
}

// guestFault is the panic value of a host function when the guest broke the
// ABI (e.g. a pointer outside its memory); Run reports it as a TrapError.
type guestFault struct{ msg string }

func (g *guestFault) Error() string { return g.msg }
