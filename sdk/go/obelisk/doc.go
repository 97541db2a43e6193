// Package obelisk is the Go SDK for writing Obelisk activities and workflows.
//
// An Obelisk component is a WebAssembly module built with the standard Go
// toolchain as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o fibo.wasm ./fibo
//
// The module's package main registers its exported functions in an init
// function (a reactor never runs main, but package main still needs an empty
// one). Each function takes a [Context] followed by its WIT parameters, and
// returns either (T, error) for a WIT result<T, E> or just error for a result
// without an ok payload:
//
//	package main
//
//	import "github.com/obelisk-go/obelisk/sdk/go/obelisk"
//
//	func init() {
//		obelisk.Export("testing:fibo/fibo.fibo", fibo)
//	}
//
//	// fibo implements `fibo: func(n: u8) -> result<u64>`.
//	func fibo(ctx obelisk.Context, n uint8) (uint64, error) {
//		a, b := uint64(0), uint64(1)
//		for range n {
//			a, b = b, a+b
//		}
//		return a, nil
//	}
//
//	func main() {}
//
// A workflow calls activities and child workflows like functions, with
// [Call] and [CallVoid]. Calls are durable: they are recorded in the
// workflow's history, and when the workflow is replayed they return the
// recorded answer without running the child again:
//
//	func fiboa(ctx obelisk.Context, n uint8, iterations uint32) (uint64, error) {
//		var sum uint64
//		for range iterations {
//			v, err := obelisk.Call[uint64](ctx, "testing:fibo/fibo.fibo", n)
//			if err != nil {
//				return 0, err
//			}
//			sum += v
//		}
//		return sum, nil
//	}
//
// To run children concurrently, a workflow submits them into a [JoinSet]
// with [Submit] and takes their responses, in the order they finish, with
// [AwaitNext] (or [JoinNext], [JoinNextTry], and [Get] afterwards). A delay
// submitted into the same join set with [SubmitDelay] makes a timeout, and
// [Sleep] is a durable sleep. [StubOk] and [StubErr] write the result of an
// activity stub's execution.
//
// Workflows must be deterministic: the same history must drive the same
// sequence of calls. Inside a workflow the clock, the random source and
// time.Sleep are deterministic, and there is no file system or network.
// Activities run with the real clock and may reach the network through the
// *http.Client of package obeliskhttp
// (github.com/obelisk-go/obelisk/sdk/go/obelisk/obeliskhttp), which is kept
// out of this package so that components that do not need net/http do not
// link it: net/http adds 2 to 7 MB to a module and slows down every
// instantiation.
// For the same reason, a log/slog logger is in package obeliskslog; this
// package itself offers [Context.Log].
//
// A webhook endpoint, a component that handles HTTP requests and may call and
// schedule executions, is an ordinary http.Handler registered with package
// obeliskwebhook (github.com/obelisk-go/obelisk/sdk/go/obelisk/obeliskwebhook).
//
// # Values
//
// Parameters and results cross the ABI as JSON typed by the WIT, and are
// converted to and from Go values with encoding/json: WIT integers map to
// Go integers of the same size (u64 values stay exact), strings to string,
// list<T> to []T except list<u8> to [Bytes] (encoding/json would encode a
// []byte as base64), option<T> to *T, records to structs whose fields are
// tagged with the snake_case field names, tuples to arrays or slices, enums
// to strings, and a variant case to "case" or {"case": value} (for example a
// struct of omitempty pointer fields, one of them set).
//
// The host makes a fresh instance for every run, and encoding/json sets
// itself up anew for every type it meets first (about half a millisecond
// for a small function). So the common shapes take a hand-written path that
// gives the same results: the run input, parameters that are all booleans,
// numbers or strings, ok and err values that are booleans, numbers, strings,
// nil or an error's message, the requests and responses of [Call], [Submit]
// and [Context.Log] for such values, and those of the other join set
// operations. Everything else goes through encoding/json.
//
// # Errors
//
// An error returned by an exported function becomes the err side of its
// result. By default that is the error's message, {"err": "message"}, which
// fits a WIT result<T, string>. To return any other err value, such as a
// variant, return [Err](value). An err returned by a child ([ErrResult]) is
// passed on unchanged when it is returned (or wrapped with %w). The host
// retries an activity that returned an err, unless the err is a variant case
// whose name contains "permanent", such as {"permanent_failure": "..."}.
//
// A panic is not an error: it traps, which fails the attempt. Activities are
// retried after a failed attempt; a workflow finishes with an execution
// failure.
//
// # Testing
//
// [TestHost] runs exported functions in an ordinary go test, answering child
// calls, logs and other host operations, such as HTTP requests
// (obeliskhttp.TestHandler), with Go functions. It simulates join sets,
// delays and sleeps.
//
// # The ABI
//
// The ABI this package implements is defined by package abi (its op names,
// the JSON shapes of requests and answers, the error kinds) and described in
// docs/abi.md.
// [Context.HostCall] gives raw access to its host operations.
package obelisk
