package wasmhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/tetratelabs/wazero/api"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
	"github.com/obelisk-go/obelisk/tracing"
)

// hostCall implements obelisk_v1.host_call(req_ptr, req_len, out_ptr, out_cap) -> len.
func (r *Runtime) hostCall(ctx context.Context, mod api.Module, stack []uint64) {
	inst := instanceFrom(ctx)
	if inst == nil {
		panic(&guestFault{msg: "host_call: called outside a wasmhost instance"})
	}
	reqPtr, reqLen := uint32(stack[0]), uint32(stack[1])
	outPtr, outCap := uint32(stack[2]), uint32(stack[3])
	mem := mod.Memory()
	view, ok := mem.Read(reqPtr, reqLen)
	if !ok {
		panic(&guestFault{msg: fmt.Sprintf("host_call: request [%#x, +%d) is outside memory", reqPtr, reqLen)})
	}
	// Copy: handlers may keep the request, and it must not alias guest memory.
	req := append([]byte(nil), view...)
	inst.kept = nil

	// While the handler runs, the call can be captured (CaptureParked).
	inst.pending = pendingCall{active: true, outPtr: outPtr, outCap: outCap}
	resp, herr := inst.dispatch(ctx, req)
	inst.pending = pendingCall{}
	n, err := inst.respond(ctx, mem, resp, herr, outPtr, outCap)
	if err != nil {
		panic(err) // unwinds the guest; Run reports it (or inst.abortErr)
	}
	stack[0] = api.EncodeI32(n)
}

// respond delivers the outcome of a host call (the handler's response or error) as
// host_call does: written to the guest's buffer at outPtr if it fits in outCap bytes,
// else kept for host_take; it returns the response's length. An error that is not a
// [*HostError] aborts the instance: it is recorded in abortErr and returned, as is a
// guest fault.
func (i *Instance) respond(ctx context.Context, mem api.Memory, resp []byte, err error, outPtr, outCap uint32) (int32, error) {
	var body []byte // the error response, or the ok value between okPrefix and okSuffix
	var n int
	isOK := err == nil
	if err != nil {
		var he *HostError
		if errors.Is(err, ErrAbort) || !errors.As(err, &he) {
			i.abortErr = err
			return 0, err
		}
		b, merr := json.Marshal(abi.ErrorAnswer{Error: abi.Error{Kind: he.Kind, Message: he.Message}})
		if merr != nil {
			return 0, fmt.Errorf("wasmhost: encoding host error: %w", merr)
		}
		body, n = b, len(b)
	} else {
		body, n = resp, len(okPrefix)+len(resp)+len(okSuffix)
		if len(resp) == 0 {
			body, n = nil, len(okPrefix)+len(okNull)+len(okSuffix) // written as null
		}
	}
	if n > math.MaxInt32 {
		i.abortErr = fmt.Errorf("wasmhost: host_call response of %d bytes does not fit the ABI", n)
		return 0, i.abortErr
	}
	if uint64(n) <= uint64(outCap) {
		var fits bool
		switch {
		case isOK && body == nil:
			fits = mem.WriteString(outPtr, okPrefix+okNull+okSuffix)
		case isOK:
			fits = mem.WriteString(outPtr, okPrefix) &&
				mem.Write(outPtr+uint32(len(okPrefix)), body) &&
				mem.WriteString(outPtr+uint32(len(okPrefix)+len(body)), okSuffix)
		default:
			fits = mem.Write(outPtr, body)
		}
		if !fits {
			return 0, &guestFault{msg: fmt.Sprintf("host_call: output buffer [%#x, +%d) is outside memory", outPtr, outCap)}
		}
	} else if isOK {
		kept := make([]byte, 0, n)
		kept = append(kept, okPrefix...)
		if body == nil {
			kept = append(kept, okNull...)
		}
		kept = append(kept, body...)
		i.kept = append(kept, okSuffix...)
	} else {
		i.kept = body
	}
	return int32(n), nil
}

// hostTake implements obelisk_v1.host_take(out_ptr, out_cap) -> len: it copies
// the response kept by the last host_call and returns its length, or -1 when
// there is none. When out_cap is too small nothing is written, the response
// stays kept, and its length is returned.
func (r *Runtime) hostTake(ctx context.Context, mod api.Module, stack []uint64) {
	inst := instanceFrom(ctx)
	if inst == nil {
		panic(&guestFault{msg: "host_take: called outside a wasmhost instance"})
	}
	outPtr, outCap := uint32(stack[0]), uint32(stack[1])
	if inst.kept == nil {
		stack[0] = api.EncodeI32(-1)
		return
	}
	n := len(inst.kept)
	if uint64(n) <= uint64(outCap) {
		if !mod.Memory().Write(outPtr, inst.kept) {
			panic(&guestFault{msg: fmt.Sprintf("host_take: output buffer [%#x, +%d) is outside memory", outPtr, outCap)})
		}
		inst.kept = nil
	}
	stack[0] = api.EncodeI32(int32(n))
}

// requestBodyRead implements obelisk_v1.request_body_read(offset, out_ptr, out_cap) -> len:
// it copies the bytes of the instance's request body from offset, at most out_cap of
// them, to out_ptr and returns how many; 0 at the end of the body, -1 when offset is
// outside it. An instance without a request body has an empty one.
func (r *Runtime) requestBodyRead(ctx context.Context, mod api.Module, stack []uint64) {
	inst := instanceFrom(ctx)
	if inst == nil {
		panic(&guestFault{msg: "request_body_read: called outside a wasmhost instance"})
	}
	offset, outPtr, outCap := int64(stack[0]), uint32(stack[1]), uint32(stack[2])
	if offset < 0 || offset > int64(len(inst.requestBody)) {
		stack[0] = api.EncodeI32(-1)
		return
	}
	chunk := inst.requestBody[offset:]
	chunk = chunk[:min(uint64(len(chunk)), uint64(outCap), math.MaxInt32)]
	if !mod.Memory().Write(outPtr, chunk) {
		panic(&guestFault{msg: fmt.Sprintf("request_body_read: output buffer [%#x, +%d) is outside memory", outPtr, len(chunk))})
	}
	stack[0] = api.EncodeI32(int32(len(chunk)))
}

const (
	okPrefix = `{"ok":`
	okNull   = `null`
	okSuffix = `}`
)

// dispatch answers one request: log (and http for activities) here, the rest
// through the handler. During _initialize only log is available.
func (i *Instance) dispatch(ctx context.Context, req []byte) ([]byte, error) {
	op, err := opOf(req)
	if err != nil {
		return nil, &HostError{Kind: abi.KindBadRequest, Message: err.Error()}
	}
	if op == abi.OpLog {
		return i.opLog(ctx, req)
	}
	if i.initializing {
		return nil, &HostError{Kind: abi.KindUnsupportedOp, Message: fmt.Sprintf("op %q is not available during _initialize", op)}
	}
	if op == abi.OpHTTP {
		// Recorded by opHTTP, with its target and status.
		if i.kind != KindActivity {
			return nil, &HostError{Kind: abi.KindUnsupportedOp, Message: "op http is only available to activities"}
		}
		return i.opHTTP(ctx, req)
	}
	if op == abi.OpHTTPBodyRead || op == abi.OpHTTPBodyClose {
		if i.kind != KindActivity {
			return nil, &HostError{Kind: abi.KindUnsupportedOp, Message: fmt.Sprintf("op %s is only available to activities", op)}
		}
		if op == abi.OpHTTPBodyRead {
			return i.opHTTPBodyRead(ctx, req)
		}
		return i.opHTTPBodyClose(req)
	}
	if i.handler == nil {
		return nil, &HostError{Kind: abi.KindUnsupportedOp, Message: fmt.Sprintf("op %q is not supported", op)}
	}
	if r, ok := i.handler.(Replayer); !ok || !r.Replaying() {
		tracing.HostCall(ctx, op) // an event of the attempt's span, if the run is traced
	}
	return i.handler.HostCall(ctx, op, req)
}

func (i *Instance) opLog(ctx context.Context, req []byte) ([]byte, error) {
	// Most debug and trace records are disabled: find the level first and
	// decode the message only when the record is wanted.
	if name, found, err := stringMember(req, "level"); err == nil && found && (i.logs == nil || i.initializing) {
		if level, ok := abi.ParseLogLevel(name); ok && !i.logger.Enabled(ctx, slogLevels[level]) {
			return nil, nil
		}
	}
	var lr abi.LogRequest
	if err := json.Unmarshal(req, &lr); err != nil {
		return nil, &HostError{Kind: abi.KindBadRequest, Message: "log: " + err.Error()}
	}
	level, ok := abi.ParseLogLevel(lr.Level)
	if !ok {
		return nil, &HostError{Kind: abi.KindBadRequest, Message: fmt.Sprintf("log: unknown level %q (want trace, debug, info, warn, error or critical)", lr.Level)}
	}
	i.emitLog(ctx, level, lr.Context, lr.Message)
	return nil, nil
}
