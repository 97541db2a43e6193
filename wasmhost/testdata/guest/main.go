//go:build wasip1

// Command guest is the test guest of package wasmhost. It implements guest
// ABI v1 (docs/abi.md) directly with //go:wasmimport and //go:wasmexport,
// independently of the Go SDK, and offers one function per behaviour the
// host has to handle. Functions are selected by the last segment of the FFQN
// (after the last '.'), e.g. "test:guest/api.echo".
//
// Build: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o guest.wasm .
package main

import (
	"bytes"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

//go:wasmimport obelisk_v1 host_call
func hostCall(reqPtr unsafe.Pointer, reqLen int32, outPtr unsafe.Pointer, outCap int32) int32

//go:wasmimport obelisk_v1 host_take
func hostTake(outPtr unsafe.Pointer, outCap int32) int32

//go:wasmimport wasi:logging/logging@0.1.0-draft log
func wasiLog(level int32, ctxPtr *byte, ctxLen int32, msgPtr *byte, msgLen int32)

// input holds the buffers handed to the host by obelisk_v1_alloc until the
// next obelisk_v1_run returns; output keeps the result alive until the host
// has read it.
var (
	inputs [][]byte
	output []byte
	outBuf [256]byte // deliberately small: larger responses go through host_take
	sink   uint64
	held   [][]byte // what alloc allocated, until it returns
)

//go:wasmexport obelisk_v1_alloc
func alloc(size int32) unsafe.Pointer {
	buf := make([]byte, size+1) // +1 so that size 0 still has an address
	inputs = append(inputs, buf)
	return unsafe.Pointer(&buf[0])
}

//go:wasmexport obelisk_v1_run
func run(ptr unsafe.Pointer, n int32) int64 {
	in := unsafe.Slice((*byte)(ptr), n)
	output = dispatch(in)
	inputs = nil
	if len(output) == 0 {
		return 0
	}
	return int64(uintptr(unsafe.Pointer(&output[0])))<<32 | int64(len(output))
}

// What the package init saw: the answers to host calls made during
// _initialize, and the clock and random source at that time.
var initSeen struct {
	Log    json.RawMessage `json:"log"`
	Echo   json.RawMessage `json:"echo"`
	Wall   int64           `json:"wall"`
	Crypto string          `json:"crypto"`
	Math   uint64          `json:"math"`
}

func init() {
	initSeen.Log = call([]byte(`{"op":"log","level":"debug","message":"guest init"}`))
	initSeen.Echo = call([]byte(`{"op":"echo","value":1}`))
	initSeen.Wall = time.Now().UnixNano()
	var b [8]byte
	crand.Read(b[:])
	initSeen.Crypto = hex.EncodeToString(b[:])
	initSeen.Math = mrand.Uint64()
}

type runInput struct {
	FFQN        string            `json:"ffqn"`
	Params      []json.RawMessage `json:"params"`
	ExecutionID string            `json:"execution_id"`
	Attempt     int               `json:"attempt"`
}

// call performs one host call and returns the whole response JSON.
func call(req []byte) []byte {
	if len(req) == 0 {
		req = []byte("{}")
	}
	n := hostCall(unsafe.Pointer(&req[0]), int32(len(req)), unsafe.Pointer(&outBuf[0]), int32(len(outBuf)))
	if int(n) <= len(outBuf) {
		return append([]byte(nil), outBuf[:n]...)
	}
	big := make([]byte, n)
	if got := hostTake(unsafe.Pointer(&big[0]), n); got != n {
		panic(fmt.Sprintf("host_take returned %d, want %d", got, n))
	}
	return big
}

func ok(v any) []byte {
	b, err := json.Marshal(map[string]any{"ok": v})
	if err != nil {
		panic(err)
	}
	return b
}

func param(in *runInput, i int) json.RawMessage {
	if i < len(in.Params) {
		return in.Params[i]
	}
	return json.RawMessage("null")
}

func intParam(in *runInput, i int) int {
	n, err := strconv.Atoi(string(param(in, i)))
	if err != nil {
		panic(fmt.Sprintf("param %d: %v", i, err))
	}
	return n
}

func dispatch(raw []byte) []byte {
	if bytes.Contains(raw, []byte(`.noop"`)) { // no JSON decoding: measures the host's share of a run
		return []byte(`{"ok":null}`)
	}
	var in runInput
	if err := json.Unmarshal(raw, &in); err != nil {
		panic(fmt.Sprintf("bad input %q: %v", raw, err))
	}
	fn := in.FFQN[strings.LastIndexByte(in.FFQN, '.')+1:]
	switch fn {
	case "echo": // {"ok": params[0]}
		return []byte(`{"ok":` + string(param(&in, 0)) + `}`)
	case "err": // {"err": params[0]}
		return []byte(`{"err":` + string(param(&in, 0)) + `}`)
	case "input": // the whole input document
		return []byte(`{"ok":` + string(raw) + `}`)
	case "raw": // params[0] is a string returned verbatim as the output
		var s string
		_ = json.Unmarshal(param(&in, 0), &s)
		return []byte(s)
	case "panic":
		panic("boom")
	case "exit":
		os.Exit(intParam(&in, 0))
	case "loop":
		for {
			sink++
		}
	case "stdout":
		fmt.Println("hello stdout")
		fmt.Fprintln(os.Stderr, "hello stderr")
		return ok(nil)
	case "wasilog": // params: level (a number), context, message; logs through wasi:logging
		var lc, msg string
		json.Unmarshal(param(&in, 1), &lc)
		json.Unmarshal(param(&in, 2), &msg)
		wasiLog(int32(intParam(&in, 0)), unsafe.StringData(lc), int32(len(lc)), unsafe.StringData(msg), int32(len(msg)))
		return []byte(`{"ok":null}`)
	case "hostcall": // params[0] is a request; {"ok": <the whole response>}
		return []byte(`{"ok":` + string(call(param(&in, 0))) + `}`)
	case "stream": // params[0] a URL read with a streamed http op, chunk by chunk until eof;
		// {"ok": {"chunks": [...], "after": the response to a read after eof}}
		var url string
		json.Unmarshal(param(&in, 0), &url)
		req, _ := json.Marshal(map[string]any{"op": "http", "url": url, "stream": true})
		var head struct {
			Ok struct {
				BodyStream int `json:"body_stream"`
			} `json:"ok"`
		}
		if err := json.Unmarshal(call(req), &head); err != nil || head.Ok.BodyStream == 0 {
			panic(fmt.Sprintf("http: %v %+v", err, head))
		}
		read, _ := json.Marshal(map[string]any{"op": "http_body_read", "stream": head.Ok.BodyStream})
		var chunks []string
		for {
			var r struct {
				Ok *struct {
					Data []byte `json:"data"`
					EOF  bool   `json:"eof"`
				} `json:"ok"`
			}
			resp := call(read)
			if err := json.Unmarshal(resp, &r); err != nil || r.Ok == nil {
				panic(fmt.Sprintf("http_body_read: %s", resp))
			}
			if len(r.Ok.Data) > 0 {
				chunks = append(chunks, string(r.Ok.Data))
			}
			if r.Ok.EOF {
				break
			}
		}
		return ok(map[string]any{"chunks": chunks, "after": json.RawMessage(call(read))})
	case "hostcall_loop": // params[0] request, params[1] count; {"ok": count}
		req := []byte(param(&in, 0))
		n := intParam(&in, 1)
		for i := 0; i < n; i++ { // the bare import, so that the loop measures the round trip
			if r := hostCall(unsafe.Pointer(&req[0]), int32(len(req)), unsafe.Pointer(&outBuf[0]), int32(len(outBuf))); int(r) > len(outBuf) {
				panic("response too large")
			}
		}
		return ok(n)
	case "take_protocol": // host_call with out_cap 0, then host_take too small, exact, again
		req := []byte(param(&in, 0))
		n := hostCall(unsafe.Pointer(&req[0]), int32(len(req)), nil, 0)
		buf := make([]byte, n+1)
		small := hostTake(unsafe.Pointer(&buf[0]), n-1)
		exact := hostTake(unsafe.Pointer(&buf[0]), n)
		again := hostTake(unsafe.Pointer(&buf[0]), n)
		return ok(map[string]any{"n": n, "small": small, "exact": exact, "again": again, "response": json.RawMessage(buf[:n])})
	case "steps": // params[0] host calls {"op":"step","i":i} interleaved with goroutines, clock and random reads; {"ok": what each saw}
		n := intParam(&in, 0)
		type step struct {
			Answer json.RawMessage `json:"answer"`
			Len    int             `json:"len"`
			Wall   int64           `json:"wall"`
			Math   uint64          `json:"math"`
		}
		var out []step
		for i := 0; i < n; i++ {
			answer := call([]byte(fmt.Sprintf(`{"op":"step","i":%d}`, i)))
			lens := make(chan int)
			go func() { lens <- len(bytes.Repeat(answer, i+1)) }()
			out = append(out, step{Answer: answer, Len: <-lens, Wall: time.Now().UnixNano(), Math: mrand.Uint64()})
		}
		return ok(out)
	case "take_empty": // host_take with no kept response
		var b [8]byte
		return ok(hostTake(unsafe.Pointer(&b[0]), int32(len(b))))
	case "time": // params[0] reads of the clock and random sources
		n := intParam(&in, 0)
		type sample struct {
			Wall   int64  `json:"wall"`
			Mono   int64  `json:"mono"`
			Crypto string `json:"crypto"`
			Math   uint64 `json:"math"`
		}
		start := time.Now()
		var out []sample
		for i := 0; i < n; i++ {
			var b [8]byte
			if _, err := crand.Read(b[:]); err != nil {
				panic(err)
			}
			now := time.Now()
			out = append(out, sample{Wall: now.UnixNano(), Mono: int64(now.Sub(start)), Crypto: hex.EncodeToString(b[:]), Math: mrand.Uint64()})
		}
		return ok(out)
	case "sleep": // sleeps params[0] ms; {"ok": {"elapsed_ns", "wall_before", "wall_after"}}
		d := time.Duration(intParam(&in, 0)) * time.Millisecond
		before := time.Now()
		time.Sleep(d)
		after := time.Now()
		return ok(map[string]int64{"elapsed_ns": int64(after.Sub(before)), "wall_before": before.UnixNano(), "wall_after": after.UnixNano()})
	case "alloc": // allocates and writes params[0] MiB in 1 MiB blocks (-1: until it fails); {"ok": MiB}
		n := intParam(&in, 0)
		for i := 0; n < 0 || i < n; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = byte(j)
			}
			held = append(held, b)
		}
		defer func() { held = nil }()
		return ok(len(held))
	case "init": // what the package init saw
		return ok(initSeen)
	case "env": // what the WASI environment exposes
		_, err := os.ReadDir("/")
		return ok(map[string]any{"args": os.Args, "env": os.Environ(), "readdir_err": fmt.Sprint(err)})
	}
	return []byte(`{"err":"unknown function ` + fn + `"}`)
}

func main() {}
