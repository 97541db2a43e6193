package wasmhost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/obelisk-go/obelisk/wasmhost/internal/wasmbin"
	"github.com/obelisk-go/obelisk/wasmhost/wit"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

func TestCompileChecksABI(t *testing.T) {
	ctx := context.Background()
	good := handModule(`{"ok":"hand"}`)
	withImport := func(im ...wimport) wmod {
		m := handModule(`{"ok":"hand"}`)
		m.imports = im
		return m
	}
	tests := []struct {
		name    string
		mod     wmod
		wantErr []string // substrings; none = must compile
	}{
		{"hand-made module", good, nil},
		{"empty module", wmod{}, []string{`missing export: memory "memory"`, "missing export: func _initialize", "missing export: func obelisk_v1_alloc (i32) -> (i32)", "missing export: func obelisk_v1_run (i32, i32) -> (i64)"}},
		{"wrong run signature", func() wmod {
			m := handModule("")
			m.funcs["obelisk_v1_run"] = wfunc{params: []byte{i32, i32}, results: []byte{i32}, body: []byte{0x41, 0x00}}
			return m
		}(), []string{"export obelisk_v1_run has signature (i32, i32) -> (i32), want (i32, i32) -> (i64)"}},
		{"ABI imports", withImport(
			wimport{"obelisk_v1", "host_call", []byte{i32, i32, i32, i32}, []byte{i32}},
			wimport{"obelisk_v1", "host_take", []byte{i32, i32}, []byte{i32}},
			wimport{"wasi_snapshot_preview1", "fd_write", []byte{i32, i32, i32, i32}, []byte{i32}},
			wimport{"wasi:logging/logging@0.1.0-draft", "log", []byte{i32, i32, i32, i32, i32}, nil},
		), nil},
		{"wrong wasi:logging signature", withImport(wimport{"wasi:logging/logging@0.1.0-draft", "log", []byte{i32, i32, i32}, nil}),
			[]string{"import wasi:logging/logging@0.1.0-draft.log has signature (i32, i32, i32) -> (), want (i32, i32, i32, i32, i32) -> ()"}},
		{"unknown wasi:logging import", withImport(wimport{"wasi:logging/logging@0.1.0-draft", "flush", nil, nil}),
			[]string{"unknown import wasi:logging/logging@0.1.0-draft.flush"}},
		{"unknown host import", withImport(wimport{"obelisk_v1", "sleep", nil, nil}), []string{"unknown import obelisk_v1.sleep"}},
		{"wrong host_call signature", withImport(wimport{"obelisk_v1", "host_call", []byte{i32, i32}, []byte{i32}}),
			[]string{"import obelisk_v1.host_call has signature (i32, i32) -> (i32), want (i32, i32, i32, i32) -> (i32)"}},
		{"unknown wasi import", withImport(wimport{"wasi_snapshot_preview1", "sock_teleport", nil, nil}), []string{"unknown import wasi_snapshot_preview1.sock_teleport"}},
		{"wrong wasi signature", withImport(wimport{"wasi_snapshot_preview1", "fd_write", nil, nil}), []string{"import wasi_snapshot_preview1.fd_write has signature () -> ()"}},
		{"unknown module", withImport(wimport{"env", "abort", nil, nil}), []string{`import env.abort from unknown module "env"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := testRT.Compile(ctx, tt.name, tt.mod.encode())
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Compile: %v", err)
				}
				m.Close(ctx)
				return
			}
			if err == nil {
				t.Fatal("Compile succeeded, want an error")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q\ndoes not mention %q", err, want)
				}
			}
			if !strings.Contains(err.Error(), tt.name) {
				t.Errorf("error %q does not name the module", err)
			}
		})
	}
	if _, err := testRT.Compile(ctx, "garbage", []byte("not wasm")); err == nil || !strings.Contains(err.Error(), `compiling module "garbage"`) {
		t.Errorf("Compile(garbage) = %v", err)
	}
}

func TestHandModuleRunAndWIT(t *testing.T) {
	ctx := context.Background()
	m := handModule(`{"ok":"hand"}`)
	files := []wit.File{{Path: "x.wit", Text: "package a:b;\n"}}
	wasm, err := wit.EmbedInWasm(m.encode(), files)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := testRT.Compile(ctx, "hand", wasm)
	if err != nil {
		t.Fatal(err)
	}
	defer mod.Close(ctx)
	if got, err := mod.WIT(); err != nil || !reflect.DeepEqual(got, files) {
		t.Errorf("WIT = %v, %v; want %v", got, err, files)
	}
	if _, err := testGuest.WIT(); !errors.Is(err, wit.ErrNoSection) {
		t.Errorf("WIT of a module without WIT: %v, want ErrNoSection", err)
	}
	if mod.Name() != "hand" {
		t.Errorf("Name = %q", mod.Name())
	}
	for _, kind := range []Kind{KindActivity, KindWorkflow} {
		inst, err := mod.Instantiate(ctx, InstanceConfig{Kind: kind, ClockStart: time.Unix(1, 0)})
		if err != nil {
			t.Fatal(err)
		}
		out, err := inst.Run(ctx, RunInput{FFQN: "a:b/c.d"})
		if err != nil || string(out) != `{"ok":"hand"}` {
			t.Errorf("%v: Run = %s, %v", kind, out, err)
		}
	}
}

// TestMergedDataSameMemory checks that merging the Go guest's data segments
// (done by Compile) leaves the initial memory unchanged.
func TestMergedDataSameMemory(t *testing.T) {
	ctx := context.Background()
	merged, st, ok, err := wasmbin.MergeData(guestWasm, mergeDataMaxGap)
	if err != nil || !ok {
		t.Fatalf("MergeData: ok=%v err=%v", ok, err)
	}
	t.Logf("data segments: %d -> %d (%d bytes)", st.SegmentsBefore, st.SegmentsAfter, st.Bytes)
	memory := func(wasm []byte) []byte {
		r := wazero.NewRuntime(ctx)
		defer r.Close(ctx)
		if _, err := wasi_snapshot_preview1.Instantiate(ctx, r); err != nil {
			t.Fatal(err)
		}
		noop := func(context.Context, api.Module, []uint64) {}
		i32 := api.ValueTypeI32
		if _, err := r.NewHostModuleBuilder(HostModuleName).
			NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(noop), []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}).Export(importHostCall).
			NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(noop), []api.ValueType{i32, i32}, []api.ValueType{i32}).Export(importHostTake).
			Instantiate(ctx); err != nil {
			t.Fatal(err)
		}
		if err := instantiateNoopLogging(ctx, r); err != nil {
			t.Fatal(err)
		}
		m, err := r.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithStartFunctions())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := m.Memory().Read(0, m.Memory().Size())
		return bytes.Clone(b)
	}
	if !bytes.Equal(memory(guestWasm), memory(merged)) {
		t.Error("initial memory differs")
	}
}

func TestRunResults(t *testing.T) {
	tests := []struct {
		fn, params string
		want       string // exact output, or "" when an error is expected
		trap       string // substring of the TrapError message
		exitCode   int    // -1: not an exit
	}{
		{fn: "echo", params: `[{"a":[1,2,"x"]}]`, want: `{"ok":{"a":[1,2,"x"]}}`},
		{fn: "echo", want: `{"ok":null}`},
		{fn: "err", params: `[{"permanent_failure":"bad input"}]`, want: `{"err":{"permanent_failure":"bad input"}}`},
		{fn: "err", params: `[null]`, want: `{"err":null}`},
		{fn: "input", params: `[10]`, want: `{"ok":{"ffqn":"test:guest/api.input","params":[10],"execution_id":"E_TEST","attempt":1}}`},
		{fn: "panic", trap: "panic: boom", exitCode: -1},
		{fn: "exit", params: `[3]`, trap: "exit code 3", exitCode: 3},
		{fn: "exit", params: `[0]`, trap: "exit code 0", exitCode: 0},
		{fn: "raw", params: `["not json"]`, trap: "result is not a JSON object", exitCode: -1},
		{fn: "raw", params: `["[1]"]`, trap: "result is not a JSON object", exitCode: -1},
		{fn: "raw", params: `["{\"ok\":1,\"err\":2}"]`, trap: `exactly one of "ok" and "err"`, exitCode: -1},
		{fn: "raw", params: `["{\"value\":1}"]`, trap: `exactly one of "ok" and "err"`, exitCode: -1},
		{fn: "raw", params: `[""]`, trap: "result is not a JSON object", exitCode: -1},
		{fn: "nope", want: `{"err":"unknown function nope"}`},
	}
	for _, tt := range tests {
		for _, cfg := range []InstanceConfig{{Kind: KindActivity}, wfConfig(1)} {
			t.Run(fmt.Sprintf("%s%s/%v", tt.fn, tt.params, cfg.Kind), func(t *testing.T) {
				out, err := runGuest(context.Background(), t, cfg, tt.fn, tt.params)
				if tt.want != "" {
					if err != nil || string(out) != tt.want {
						t.Fatalf("Run = %s, %v; want %s", out, err, tt.want)
					}
					return
				}
				var trap *TrapError
				if !errors.As(err, &trap) {
					t.Fatalf("Run = %s, %v; want a *TrapError", out, err)
				}
				if !strings.Contains(trap.Message, tt.trap) {
					t.Errorf("trap message %q does not contain %q", trap.Message, tt.trap)
				}
				if tt.exitCode >= 0 && (!trap.Exited || trap.ExitCode != uint32(tt.exitCode)) {
					t.Errorf("trap exited=%v code=%d, want exit code %d", trap.Exited, trap.ExitCode, tt.exitCode)
				}
				if tt.fn == "panic" && !strings.Contains(trap.Stderr, "goroutine") {
					t.Errorf("stderr tail %q lacks the Go stack trace", trap.Stderr)
				}
			})
		}
	}
}

func TestRunOnce(t *testing.T) {
	ctx := context.Background()
	inst, err := testGuest.Instantiate(ctx, InstanceConfig{Kind: KindActivity})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inst.Run(ctx, RunInput{FFQN: "x.echo"}); err != nil {
		t.Fatal(err)
	}
	if _, err := inst.Run(ctx, RunInput{FFQN: "x.echo"}); !errors.Is(err, ErrInstanceClosed) {
		t.Errorf("second Run = %v, want ErrInstanceClosed", err)
	}
	if err := inst.Close(ctx); err != nil {
		t.Errorf("Close after Run: %v", err)
	}

	inst, err = testGuest.Instantiate(ctx, InstanceConfig{Kind: KindActivity})
	if err != nil {
		t.Fatal(err)
	}
	inst.Close(ctx)
	if _, err := inst.Run(ctx, RunInput{FFQN: "x.echo"}); !errors.Is(err, ErrInstanceClosed) {
		t.Errorf("Run after Close = %v, want ErrInstanceClosed", err)
	}
}

func TestInstantiateConfigErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		cfg  InstanceConfig
		want string
	}{
		{"no kind", InstanceConfig{}, "invalid instance kind"},
		{"workflow without clock", InstanceConfig{Kind: KindWorkflow}, "ClockStart"},
		{"workflow clock before epoch", InstanceConfig{Kind: KindWorkflow, ClockStart: time.Unix(-5, 0)}, "ClockStart"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inst, err := testGuest.Instantiate(ctx, tt.cfg)
			if err == nil {
				inst.Close(ctx)
				t.Fatal("Instantiate succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), `module "guest"`) {
				t.Errorf("error %q, want it to mention %q and the module", err, tt.want)
			}
		})
	}
}

func TestKill(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := runGuest(ctx, t, InstanceConfig{Kind: KindActivity}, "loop", "")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Run = %v, want DeadlineExceeded", err)
		}
		var trap *TrapError
		if errors.As(err, &trap) {
			t.Errorf("a timeout must not be a TrapError: %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("killed after %v", d)
		}
	})
	t.Run("deadline while sleeping", func(t *testing.T) {
		// A guest blocked in poll_oneoff must not outlive its deadline by its sleep.
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := runGuest(ctx, t, InstanceConfig{Kind: KindActivity}, "sleep", "[60000]")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Run = %v, want DeadlineExceeded (not the end of a 60 s sleep)", err)
		}
	})
	t.Run("cancel with cause", func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(context.Background())
		cause := errors.New("lock lost")
		inst, err := testGuest.Instantiate(ctx, wfConfig(1))
		if err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(100*time.Millisecond, func() { cancel(cause) })
		_, err = inst.Run(ctx, RunInput{FFQN: "x.loop"})
		if !errors.Is(err, context.Canceled) || !errors.Is(err, cause) {
			t.Fatalf("Run = %v, want Canceled and the cause", err)
		}
	})
	t.Run("Close while blocked in a host call", func(t *testing.T) {
		ctx := context.Background()
		entered := make(chan struct{})
		inst, err := testGuest.Instantiate(ctx, InstanceConfig{Kind: KindWorkflow, ClockStart: time.Unix(1, 0),
			Handler: HostHandlerFunc(func(ctx context.Context, op string, req []byte) ([]byte, error) {
				close(entered)
				<-ctx.Done()
				return nil, ctx.Err()
			})})
		if err != nil {
			t.Fatal(err)
		}
		go func() { <-entered; inst.Close(ctx) }()
		_, err = inst.Run(ctx, RunInput{FFQN: "x.hostcall", Params: []byte(`[{"op":"join_next"}]`)})
		if !errors.Is(err, ErrInstanceClosed) || errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want ErrInstanceClosed", err)
		}
	})
	t.Run("Close", func(t *testing.T) {
		ctx := context.Background()
		inst, err := testGuest.Instantiate(ctx, InstanceConfig{Kind: KindActivity})
		if err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(100*time.Millisecond, func() { inst.Close(ctx) })
		_, err = inst.Run(ctx, RunInput{FFQN: "x.loop"})
		if !errors.Is(err, ErrInstanceClosed) {
			t.Fatalf("Run = %v, want ErrInstanceClosed", err)
		}
	})
}

// opHandler answers test ops.
func opHandler(t testing.TB) HostHandlerFunc {
	return func(ctx context.Context, op string, req []byte) ([]byte, error) {
		switch op {
		case "echo":
			var r struct {
				Value json.RawMessage `json:"value"`
			}
			if err := json.Unmarshal(req, &r); err != nil {
				return nil, &HostError{Kind: abi.KindBadRequest, Message: err.Error()}
			}
			return r.Value, nil
		case "nothing":
			return nil, nil
		case "big":
			var r struct {
				Size int `json:"size"`
			}
			json.Unmarshal(req, &r)
			return json.Marshal(strings.Repeat("x", r.Size))
		case "fail":
			return nil, fmt.Errorf("wrapped: %w", &HostError{Kind: "function_not_found", Message: "no such function"})
		case "req":
			return req, nil
		}
		return nil, &HostError{Kind: abi.KindUnsupportedOp, Message: op}
	}
}

func TestHostCall(t *testing.T) {
	big := strings.Repeat("x", 100_000)
	tests := []struct {
		name    string
		handler HostHandler
		req     string
		want    string
	}{
		{"small", opHandler(t), `{"op":"echo","value":{"n":1}}`, `{"ok":{"n":1}}`},
		{"op not first", opHandler(t), `{"value":[1,{"op":"x"},"}"], "op" : "echo"}`, `{"ok":[1,{"op":"x"},"}"]}`},
		{"escaped op", opHandler(t), `{"op":"ech\u006f","value":2}`, `{"ok":2}`},
		{"null value", opHandler(t), `{"op":"nothing"}`, `{"ok":null}`},
		{"short value", opHandler(t), `{"op":"echo","value":1}`, `{"ok":1}`},
		{"request passed whole", opHandler(t), `{"op":"req","a":1}`, `{"ok":{"op":"req","a":1}}`},
		{"exactly out_cap", opHandler(t), `{"op":"big","size":248}`, `{"ok":"` + strings.Repeat("x", 248) + `"}`},
		{"one over out_cap (host_take)", opHandler(t), `{"op":"big","size":249}`, `{"ok":"` + strings.Repeat("x", 249) + `"}`},
		{"large (host_take)", opHandler(t), `{"op":"big","size":100000}`, `{"ok":"` + big + `"}`},
		{"host error", opHandler(t), `{"op":"fail"}`, `{"error":{"kind":"function_not_found","message":"no such function"}}`},
		{"no handler", nil, `{"op":"call"}`, `{"error":{"kind":"unsupported_op","message":"op \"call\" is not supported"}}`},
		{"no op", opHandler(t), `{"value":1}`, `{"error":{"kind":"bad_request","message":"request has no \"op\""}}`},
		{"op not a string", opHandler(t), `{"op":1}`, `{"error":{"kind":"bad_request","message":"request: \"op\" must be a string"}}`},
		{"not an object", opHandler(t), `[1]`, `{"error":{"kind":"bad_request","message":"request is not a JSON object"}}`},
		{"http in workflow", opHandler(t), `{"op":"http","url":"http://127.0.0.1/"}`, `{"error":{"kind":"unsupported_op","message":"op http is only available to activities"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := wfConfig(1)
			cfg.Handler = tt.handler
			out := mustRun(t, cfg, "hostcall", "["+tt.req+"]")
			if want := `{"ok":` + tt.want + `}`; string(out) != want {
				t.Errorf("got  %s\nwant %s", abbreviate(out), abbreviate([]byte(want)))
			}
		})
	}
	t.Run("host_take protocol", func(t *testing.T) {
		for _, tt := range []struct{ req, resp string }{
			{`{"op":"nothing"}`, `{"ok":null}`},
			{`{"op":"echo","value":[1,2]}`, `{"ok":[1,2]}`},
			{`{"op":"fail"}`, `{"error":{"kind":"function_not_found","message":"no such function"}}`},
		} {
			cfg := wfConfig(1)
			cfg.Handler = opHandler(t)
			out := mustRun(t, cfg, "take_protocol", "["+tt.req+"]")
			want := fmt.Sprintf(`{"ok":{"again":-1,"exact":%d,"n":%d,"response":%s,"small":%d}}`, len(tt.resp), len(tt.resp), tt.resp, len(tt.resp))
			if string(out) != want {
				t.Errorf("got  %s\nwant %s", out, want)
			}
		}
	})
	t.Run("host_take without kept response", func(t *testing.T) {
		if out := mustRun(t, wfConfig(1), "take_empty", ""); string(out) != `{"ok":-1}` {
			t.Errorf("got %s", out)
		}
	})
}

func TestHandlerBlocks(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{})
	cfg := wfConfig(1)
	cfg.Handler = HostHandlerFunc(func(ctx context.Context, op string, req []byte) ([]byte, error) {
		close(entered)
		select {
		case <-release:
			return []byte(`"released"`), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	done := make(chan []byte)
	go func() {
		out, err := runGuest(context.Background(), t, cfg, "hostcall", `[{"op":"wait"}]`)
		if err != nil {
			t.Error(err)
		}
		done <- out
	}()
	<-entered
	// Other instances keep running while one is blocked in a host call.
	if out := mustRun(t, wfConfig(2), "echo", `[1]`); string(out) != `{"ok":1}` {
		t.Errorf("concurrent run: %s", out)
	}
	select {
	case out := <-done:
		t.Fatalf("Run returned %s while the handler was blocked", out)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if out := <-done; string(out) != `{"ok":{"ok":"released"}}` {
		t.Errorf("got %s", out)
	}
}

type nondeterminismError struct{ detail string }

func (e *nondeterminismError) Error() string { return "nondeterminism: " + e.detail }
func (e *nondeterminismError) Unwrap() error { return ErrAbort }

func TestHandlerAbort(t *testing.T) {
	t.Run("ErrAbort", func(t *testing.T) {
		cfg := wfConfig(1)
		cfg.Handler = HostHandlerFunc(func(ctx context.Context, op string, req []byte) ([]byte, error) {
			return nil, &nondeterminismError{detail: "expected call of a.b/c.d"}
		})
		_, err := runGuest(context.Background(), t, cfg, "hostcall", `[{"op":"call"}]`)
		var nd *nondeterminismError
		if !errors.Is(err, ErrAbort) || !errors.As(err, &nd) || nd.detail != "expected call of a.b/c.d" {
			t.Fatalf("Run = %v, want the handler's error", err)
		}
		var trap *TrapError
		if errors.As(err, &trap) {
			t.Errorf("an abort must not be a TrapError: %v", err)
		}
	})
	t.Run("any non-HostError", func(t *testing.T) {
		interrupt := errors.New("interrupt: instance dropped")
		cfg := wfConfig(1)
		cfg.Handler = HostHandlerFunc(func(ctx context.Context, op string, req []byte) ([]byte, error) {
			return nil, interrupt
		})
		_, err := runGuest(context.Background(), t, cfg, "hostcall", `[{"op":"join_next"}]`)
		if !errors.Is(err, interrupt) {
			t.Fatalf("Run = %v, want %v", err, interrupt)
		}
	})
	t.Run("HostError wrapping ErrAbort aborts", func(t *testing.T) {
		cfg := wfConfig(1)
		cfg.Handler = HostHandlerFunc(func(ctx context.Context, op string, req []byte) ([]byte, error) {
			return nil, errors.Join(&HostError{Kind: "x", Message: "y"}, ErrAbort)
		})
		_, err := runGuest(context.Background(), t, cfg, "hostcall", `[{"op":"x"}]`)
		if !errors.Is(err, ErrAbort) {
			t.Fatalf("Run = %v, want ErrAbort", err)
		}
	})
	t.Run("cancelled while blocked", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cfg := wfConfig(1)
		cfg.Handler = HostHandlerFunc(func(ctx context.Context, op string, req []byte) ([]byte, error) {
			cancel()
			<-ctx.Done()
			return nil, ctx.Err()
		})
		_, err := runGuest(ctx, t, cfg, "hostcall", `[{"op":"join_next"}]`)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want Canceled", err)
		}
	})
	t.Run("during _initialize-free instance, next instance fine", func(t *testing.T) {
		if out := mustRun(t, wfConfig(1), "echo", `[1]`); string(out) != `{"ok":1}` {
			t.Errorf("got %s", out)
		}
	})
}

func TestLogOp(t *testing.T) {
	tests := []struct {
		level string
		want  slog.Level
	}{
		{"trace", TraceLevel},
		{"critical", CriticalLevel},
		{"debug", slog.LevelDebug},
		{"info", slog.LevelInfo},
		{"warn", slog.LevelWarn},
		{"error", slog.LevelError},
	}
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			h := &captureHandler{}
			cfg := InstanceConfig{Kind: KindActivity, Logger: slog.New(h)}
			out := mustRun(t, cfg, "hostcall", `[{"op":"log","level":"`+tt.level+`","message":"hello \"guest\""}]`)
			if string(out) != `{"ok":{"ok":null}}` {
				t.Fatalf("got %s", out)
			}
			if len(h.records) != 1 {
				t.Fatalf("got %d records", len(h.records))
			}
			r := h.records[0]
			if r.Level != tt.want || r.Message != `hello "guest"` {
				t.Errorf("record level %v message %q", r.Level, r.Message)
			}
			var id string
			r.Attrs(func(a slog.Attr) bool {
				if a.Key == "execution_id" {
					id = a.Value.String()
				}
				return true
			})
			if id != "E_TEST" {
				t.Errorf("execution_id = %q", id)
			}
		})
	}
	t.Run("unknown level", func(t *testing.T) {
		out := mustRun(t, wfConfig(1), "hostcall", `[{"op":"log","level":"loud","message":"x"}]`)
		if !strings.Contains(string(out), `"kind":"bad_request"`) {
			t.Errorf("got %s", out)
		}
	})
}

func TestWorkflowDeterminism(t *testing.T) {
	const reads = 50
	type sample struct {
		Wall   int64  `json:"wall"`
		Mono   int64  `json:"mono"`
		Crypto string `json:"crypto"`
		Math   uint64 `json:"math"`
	}
	samples := func(cfg InstanceConfig) []sample {
		out := mustRun(t, cfg, "time", fmt.Sprint("[", reads, "]"))
		var res struct{ Ok []sample }
		if err := json.Unmarshal(out, &res); err != nil || len(res.Ok) != reads {
			t.Fatalf("bad output %s: %v", out, err)
		}
		return res.Ok
	}
	a, b := samples(wfConfig(7)), samples(wfConfig(7))
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("same seed and clock, different runs:\n%v\n%v", a, b)
	}
	start := wfConfig(7).ClockStart
	for i, s := range a {
		if s.Wall < start.UnixNano() || s.Wall > start.Add(time.Second).UnixNano() {
			t.Errorf("sample %d: wall clock %v not just after ClockStart %v", i, time.Unix(0, s.Wall).UTC(), start)
		}
		if i > 0 && (s.Wall <= a[i-1].Wall || s.Mono <= a[i-1].Mono) {
			t.Errorf("sample %d: clock did not advance: %+v after %+v", i, s, a[i-1])
		}
	}
	c := samples(wfConfig(8))
	if a[0].Crypto == c[0].Crypto {
		t.Errorf("different seeds gave the same random bytes %s", a[0].Crypto)
	}

	act1, act2 := samples(InstanceConfig{Kind: KindActivity}), samples(InstanceConfig{Kind: KindActivity})
	if act1[0].Crypto == act2[0].Crypto || act1[0].Math == act2[0].Math {
		t.Errorf("activities got the same randomness: %+v %+v", act1[0], act2[0])
	}
	if d := time.Since(time.Unix(0, act1[0].Wall)); d < 0 || d > time.Minute {
		t.Errorf("activity wall clock %v is not now", time.Unix(0, act1[0].Wall))
	}
}

func TestInitialize(t *testing.T) {
	type seen struct {
		Log    json.RawMessage `json:"log"`
		Echo   json.RawMessage `json:"echo"`
		Wall   int64           `json:"wall"`
		Crypto string          `json:"crypto"`
		Math   uint64          `json:"math"`
	}
	initSeen := func(cfg InstanceConfig) seen {
		var called bool
		cfg.Handler = HostHandlerFunc(func(ctx context.Context, op string, req []byte) ([]byte, error) {
			called = true
			return nil, nil
		})
		out := mustRun(t, cfg, "init", "")
		if called {
			t.Errorf("%v: the handler was called during _initialize (or by the init function)", cfg.Kind)
		}
		var r struct{ Ok seen }
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatal(err)
		}
		return r.Ok
	}
	a := initSeen(wfConfig(1))
	if string(a.Log) != `{"ok":null}` || !strings.Contains(string(a.Echo), `is not available during _initialize`) {
		t.Errorf("host calls during _initialize: log %s, echo %s", a.Log, a.Echo)
	}
	// A workflow's _initialize does not depend on the execution.
	cfg := wfConfig(2)
	cfg.ClockStart = cfg.ClockStart.Add(time.Hour)
	if b := initSeen(cfg); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("workflow _initialize saw different things for different executions:\n%+v\n%+v", a, b)
	}
	if a.Wall >= wfConfig(1).ClockStart.UnixNano() {
		t.Errorf("workflow _initialize saw the execution's clock %v", time.Unix(0, a.Wall))
	}
	// Activities restored from the snapshot see what its _initialize saw: it ran once
	// for the module (their run-time randomness is their own: TestActivitiesRestoredReseeded;
	// with snapshots disabled each initialises afresh: TestActivitySnapshotsDisabled).
	mustSnapshot(t, testGuest)
	if x, y := initSeen(InstanceConfig{Kind: KindActivity}), initSeen(InstanceConfig{Kind: KindActivity}); fmt.Sprint(x) != fmt.Sprint(y) {
		t.Errorf("activities restored from one snapshot saw different initialisations: %+v %+v", x, y)
	}
}

func TestSleep(t *testing.T) {
	type result struct {
		Ok struct {
			Elapsed    int64 `json:"elapsed_ns"`
			WallBefore int64 `json:"wall_before"`
			WallAfter  int64 `json:"wall_after"`
		}
	}
	start := time.Now()
	out := mustRun(t, wfConfig(1), "sleep", `[3600000]`)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("a workflow sleep of 1h took %v", d)
	}
	var r result
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	if time.Duration(r.Ok.Elapsed) < time.Hour || time.Duration(r.Ok.WallAfter-r.Ok.WallBefore) < time.Hour {
		t.Errorf("workflow clock did not advance by the sleep: %s", out)
	}

	start = time.Now()
	out = mustRun(t, InstanceConfig{Kind: KindActivity}, "sleep", `[50]`)
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("an activity sleep of 50ms took %v", d)
	}
	if err := json.Unmarshal(out, &r); err != nil || time.Duration(r.Ok.Elapsed) < 50*time.Millisecond {
		t.Errorf("activity sleep: %s %v", out, err)
	}
}

func TestSandbox(t *testing.T) {
	for _, cfg := range []InstanceConfig{wfConfig(1), {Kind: KindActivity}} {
		out := mustRun(t, cfg, "env", "")
		var r struct {
			Ok struct {
				Args       []string `json:"args"`
				Env        []string `json:"env"`
				ReaddirErr string   `json:"readdir_err"`
			}
		}
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Ok.Args) != 0 || len(r.Ok.Env) != 0 || r.Ok.ReaddirErr == "<nil>" {
			t.Errorf("%v: sandbox exposes %s", cfg.Kind, out)
		}
	}
}

func TestStdio(t *testing.T) {
	var stdout, stderr bytes.Buffer
	cfg := wfConfig(1)
	cfg.Stdout, cfg.Stderr = &stdout, &stderr
	mustRun(t, cfg, "stdout", "")
	if stdout.String() != "hello stdout\n" || stderr.String() != "hello stderr\n" {
		t.Errorf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
	mustRun(t, wfConfig(1), "stdout", "") // nil writers discard
}

func TestConcurrentInstances(t *testing.T) {
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := wfConfig(uint64(i))
			cfg.Handler = opHandler(t)
			out, err := runGuest(context.Background(), t, cfg, "hostcall", fmt.Sprintf(`[{"op":"echo","value":%d}]`, i))
			if want := fmt.Sprintf(`{"ok":{"ok":%d}}`, i); err != nil || string(out) != want {
				t.Errorf("instance %d: %s %v, want %s", i, out, err, want)
			}
		}()
	}
	wg.Wait()
}

func TestTailWriter(t *testing.T) {
	var dst bytes.Buffer
	w := &tailWriter{w: &dst}
	for i := range 2000 {
		fmt.Fprintf(w, "line %d\n", i)
	}
	tail := w.String()
	if len(tail) > tailSize || !strings.HasSuffix(tail, "line 1999\n") {
		t.Errorf("tail of %d bytes ends %q", len(tail), tail[len(tail)-20:])
	}
	w.Write(bytes.Repeat([]byte("y"), 3*tailSize))
	if w.String() != strings.Repeat("y", tailSize) {
		t.Error("large write not kept as tail")
	}
	if !strings.HasPrefix(dst.String(), "line 0\n") {
		t.Error("not forwarded")
	}
	if got := tellingLine("x\npanic: boom\n\ngoroutine 1 [running]:\nmain.f()\n\t/a.go:1\n"); got != "panic: boom" {
		t.Errorf("tellingLine = %q", got)
	}
}

func TestOpOf(t *testing.T) {
	tests := []struct {
		req, op, err string
	}{
		{`{"op":"call"}`, "call", ""},
		{` { "a" : "}" , "b":[{"op":"no"},"\"]"], "c": -1.5e3, "d":true, "op" : "log" } `, "log", ""},
		{`{"a":null,"op":"x\"y"}`, `x"y`, ""},
		{`{"\u006fp":"esc"}`, "esc", ""},
		{`{}`, "", `no "op"`},
		{`{"a":1}`, "", `no "op"`},
		{`{"op":1}`, "", "must be a string"},
		{`{"level":"x"}`, "", `no "op"`},
		{`[]`, "", "not a JSON object"},
		{``, "", "not a JSON object"},
		{`{"a":"unterminated`, "", "unterminated string"},
		{`{"a":{"b":1}`, "", "unexpected end"},
		{`{"a" 1}`, "", "expected ':'"},
		{`{"a":1;"op":"x"}`, "", "unexpected"},
		{`{"a":[1,2}`, "", "mismatched '}'"},
		{`{"a":[1,2]]}`, "", "unexpected ']'"},
	}
	for _, tt := range tests {
		op, err := opOf([]byte(tt.req))
		if tt.err == "" {
			if err != nil || op != tt.op {
				t.Errorf("opOf(%s) = %q, %v; want %q", tt.req, op, err, tt.op)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("opOf(%s) = %q, %v; want error containing %q", tt.req, op, err, tt.err)
		}
	}
}

func FuzzOpOf(f *testing.F) {
	f.Add([]byte(`{"op":"call","params":[1,{"a":"b"}]}`))
	f.Add([]byte(`{"a":"\"","op":"x"}`))
	f.Fuzz(func(t *testing.T, req []byte) {
		op, err := opOf(req)
		var full map[string]json.RawMessage
		if json.Unmarshal(req, &full) != nil {
			return // opOf may accept some invalid documents; the handler rejects them
		}
		raw, has := full["op"]
		var want string
		isString := has && json.Unmarshal(raw, &want) == nil
		if isString && (err != nil || op != want) {
			// duplicate keys: encoding/json keeps the last, opOf the first
			if bytes.Count(req, []byte(`op`)) > 1 {
				return
			}
			t.Fatalf("opOf(%s) = %q, %v; want %q", req, op, err, want)
		}
		if !isString && err == nil {
			if bytes.Count(req, []byte(`op`)) > 1 {
				return
			}
			t.Fatalf("opOf(%s) = %q, want an error", req, op)
		}
	})
}
