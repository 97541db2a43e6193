// Package wasmhost runs guest WebAssembly modules (guest ABI v1, docs/abi.md)
// under wazero.
//
// It owns everything between "here are the bytes of a module" and "here is the
// JSON result of one run": the wazero runtime and its compilation cache, the
// WASI environment of each kind of component (a deterministic clock, random
// source and sleep for workflows; the real ones for activities), the
// obelisk_v1 host module (host_call / host_take), the host operations that need
// no knowledge of executions (log, and http for activities with an allow-list
// of hosts), and the classification of how a run ended (result, trap, timeout
// or cancellation, abort requested by the host).
//
// It knows nothing about events, storage or actors: every other host operation
// is passed to the [HostHandler] given to [Module.Instantiate], which may block
// (a workflow waiting for a child) or abort the instance.
//
// Typical use:
//
//	rt, err := wasmhost.NewRuntime(ctx, wasmhost.Config{CacheDir: dir, Logger: logger})
//	mod, err := rt.Compile(ctx, "fibo", wasm)              // once per component
//	inst, err := mod.Instantiate(ctx, wasmhost.InstanceConfig{Kind: wasmhost.KindActivity})
//	defer inst.Close(ctx)
//	out, err := inst.Run(ctx, wasmhost.RunInput{FFQN: ffqn, Params: params, ExecutionID: id, Attempt: 1})
//
// A [Runtime] and its [Module]s are safe for concurrent use; an [Instance] is
// used by one goroutine at a time (except [Instance.Close], which may be called
// from anywhere to kill it).
//
// Making instances cheap: Compile merges the tens of thousands of data
// segments a Go module carries (internal/wasmbin); on Linux, linear memories
// of 2 MiB or more live in their own mappings, outside the Go heap, backed by
// transparent huge pages where available (internal/linmem); and with
// [Config.PoolSize] initialised instances are prepared in the background.
// Since a workflow's _initialize never depends on the execution, a pooled
// instance behaves exactly like a fresh one. For the same reason, workflow
// instances are restored from a snapshot of the memory and globals of one
// initialised workflow instance instead of running _initialize (snapshot.go;
// ~0.2 ms instead of ~2.2 ms for a Go guest); activities always initialise
// afresh, with real randomness, but on Linux start from a memory mapped
// copy-on-write from an image of the data segments instead of copying them
// (activity.go; ~1.6 ms instead of ~2.2 ms).
package wasmhost
