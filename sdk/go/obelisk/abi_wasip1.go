//go:build wasip1

package obelisk

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// This file binds the package to the guest ABI v1 (docs/abi.md): the
// obelisk_v1_alloc and obelisk_v1_run exports and the obelisk_v1 imports.

//go:wasmimport obelisk_v1 host_call
func wasmHostCall(reqPtr *byte, reqLen uint32, outPtr *byte, outCap uint32) int32

//go:wasmimport obelisk_v1 host_take
func wasmHostTake(outPtr *byte, outCap uint32) int32

//go:wasmimport wasi:logging/logging@0.1.0-draft log
func wasmLog(level uint32, contextPtr *byte, contextLen uint32, messagePtr *byte, messageLen uint32)

// wasiLog logs one record through the wasi:logging import.
func wasiLog(level uint8, context, message string) {
	wasmLog(uint32(level), unsafe.StringData(context), uint32(len(context)), unsafe.StringData(message), uint32(len(message)))
}

// The buffers below are arrays in the module's zero-initialised memory rather
// than heap allocations: every instance is fresh, and it pays for its first
// allocations (spans to carve, memory to clear) but not for zeroed memory it
// does not touch.

// responseCap is the size of the reusable response buffer. Larger responses
// are fetched with host_take into a buffer of their own size.
const responseCap = 64 << 10

var (
	// hostMu serialises host calls, which share respBuf.
	hostMu sync.Mutex
	// respBuf is the reusable buffer the host writes responses into.
	respBuf [responseCap]byte

	// inputBuf is what obelisk_v1_alloc hands out for the run input when
	// it fits. inputBufUsed is set until the run has returned.
	inputBuf     [4 << 10]byte
	inputBufUsed bool
	// outputBuf receives the output of obelisk_v1_run, when it fits.
	outputBuf [4 << 10]byte

	// allocs keeps the buffers handed out by obelisk_v1_alloc alive until
	// the run that reads them has returned.
	allocs [][]byte
	// output keeps the last obelisk_v1_run output alive after it returned,
	// until the host has read it.
	output []byte
)

// hostCall performs one operation through the host_call import, fetching a
// response larger than respBuf with host_take. It returns a copy of the
// response, so that the buffer can be reused by the next call.
func hostCall(req []byte) ([]byte, error) {
	if len(req) == 0 {
		return nil, fmt.Errorf("obelisk: empty host request")
	}
	hostMu.Lock()
	defer hostMu.Unlock()
	n := wasmHostCall(&req[0], uint32(len(req)), &respBuf[0], uint32(len(respBuf)))
	if n < 0 {
		panic(fmt.Sprintf("obelisk: host_call returned %d", n))
	}
	if int(n) <= len(respBuf) {
		return append([]byte(nil), respBuf[:n]...), nil
	}
	big := make([]byte, n)
	if m := wasmHostTake(&big[0], uint32(n)); m != n {
		panic(fmt.Sprintf("obelisk: host_take returned %d, want %d", m, n))
	}
	return big, nil
}

// obeliskAlloc implements the obelisk_v1_alloc export: size fresh bytes that
// stay valid until the next obelisk_v1_run returns.
//
//go:wasmexport obelisk_v1_alloc
func obeliskAlloc(size int32) unsafe.Pointer {
	if size < 0 {
		panic(fmt.Sprintf("obelisk: obelisk_v1_alloc(%d)", size))
	}
	if !inputBufUsed && 0 < size && int(size) <= len(inputBuf) {
		inputBufUsed = true
		return unsafe.Pointer(&inputBuf[0])
	}
	b := make([]byte, max(size, 1))
	allocs = append(allocs, b)
	return unsafe.Pointer(&b[0])
}

// obeliskRun implements the obelisk_v1_run export: it runs the exported
// function named by the JSON input and returns its JSON output packed as
// (ptr << 32) | len. Errors in the input, and panics, trap.
//
//go:wasmexport obelisk_v1_run
func obeliskRun(inPtr unsafe.Pointer, inLen int32) uint64 {
	if inLen < 0 {
		panic(fmt.Sprintf("obelisk: obelisk_v1_run with length %d", inLen))
	}
	// The input lives in a buffer from obeliskAlloc, kept alive by allocs
	// until the run has returned.
	input := unsafe.Slice((*byte)(inPtr), inLen)
	growStack(0)
	// The host has read the output of a run before it calls anything else,
	// so every run may reuse outputBuf.
	out := run(input, hostCall, wasiLog, outputBuf[:0])
	allocs, inputBufUsed = nil, false
	if len(out) == 0 {
		panic("obelisk: empty output")
	}
	output = out
	return uint64(uintptr(unsafe.Pointer(&out[0])))<<32 | uint64(len(out))
}

// obeliskWarmup implements the optional obelisk_v1_warmup export, which the host calls
// once after _initialize when it snapshots the module (docs/abi.md): see warmup.
//
//go:wasmexport obelisk_v1_warmup
func obeliskWarmup() {
	growStack(0)
	warmup()
	allocs, inputBufUsed = nil, false
	// Start restored instances with the garbage of all that collected.
	runtime.GC()
	// What a restored instance starts a run with is this state, in every run: so leave
	// it as a run needs it. The collection shrank the goroutine's stack (grow it again,
	// or every run would) and emptied the allocator's per-size caches (a second pass
	// refills them, or every run's first allocations would). Measured on fibo: a run
	// of a restored instance 62 -> 33 µs.
	growStack(0)
	warmup()
	allocs, inputBufUsed = nil, false
}

// growStack makes sure the goroutine has a stack of 8 KiB or more, enough
// for a run that does not go deep into the function it runs.
//
// The goroutine that runs exports starts a run with a small stack, which a
// run grows anyway (reflect.Value.Call alone needs more). Growing a stack
// copies it and adjusts every frame on it, looking up each frame's stack
// map: doing it here, with three frames on the stack, costs a fraction of
// what it costs ten frames deep (measured: ~50 µs less per run).
//
//go:noinline
func growStack(i int) byte {
	var buf [5 << 10]byte
	buf[i] = 1
	return buf[i&1023]
}
