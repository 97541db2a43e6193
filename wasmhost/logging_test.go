package wasmhost

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// instantiateNoopLogging gives a bare wazero runtime the wasi:logging module the test
// guest imports, doing nothing.
func instantiateNoopLogging(ctx context.Context, r wazero.Runtime) error {
	i32 := api.ValueTypeI32
	_, err := r.NewHostModuleBuilder(LoggingModuleName).
		NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {}), []api.ValueType{i32, i32, i32, i32, i32}, nil).Export(importLog).
		Instantiate(ctx)
	return err
}

// sinkRecords is a LogSink keeping what it gets.
type sinkRecords []LogRecord

func (s *sinkRecords) GuestLog(_ context.Context, rec LogRecord) { *s = append(*s, rec) }

// runLogging runs fn with params, its log records going to sink.
func runLogging(t *testing.T, cfg InstanceConfig, sink LogSink, fn, params string) ([]byte, error) {
	t.Helper()
	inst, err := testGuest.Instantiate(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Instantiate: %v", err)
	}
	defer inst.Close(context.Background())
	inst.SetLogging(RunLogging{Sink: sink})
	return inst.Run(context.Background(), RunInput{FFQN: "test:guest/api." + fn, Params: []byte(params), ExecutionID: "E_TEST", Attempt: 1})
}

func mustRunLogging(t *testing.T, cfg InstanceConfig, sink LogSink, fn, params string) []byte {
	t.Helper()
	out, err := runLogging(t, cfg, sink, fn, params)
	if err != nil {
		t.Fatalf("Run %s: %v", fn, err)
	}
	return out
}

func TestWASILogging(t *testing.T) {
	levels := []slog.Level{TraceLevel, slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError, CriticalLevel}
	for level, want := range levels {
		for _, kind := range []Kind{KindActivity, KindWorkflow} {
			h := &captureHandler{}
			var sink sinkRecords
			cfg := InstanceConfig{Kind: kind, Logger: slog.New(h)}
			if kind == KindWorkflow {
				cfg = wfConfig(1)
				cfg.Logger = slog.New(h)
			}
			params := `[` + string(rune('0'+level)) + `,"ctx","héllo \"guest\""]`
			if out := mustRunLogging(t, cfg, &sink, "wasilog", params); string(out) != `{"ok":null}` {
				t.Fatalf("got %s", out)
			}
			if len(sink) != 1 {
				t.Fatalf("level %d: sink got %d records, want 1", level, len(sink))
			}
			r := sink[0]
			if r.Level != abi.LogLevel(level) || r.Context != "ctx" || r.Message != `héllo "guest"` || r.Time.IsZero() {
				t.Errorf("level %d: sink got %+v", level, r)
			}
			// Stored with the execution, the record reaches the server's log at debug level.
			if len(h.records) != 1 || h.records[0].Level != min(want, slog.LevelDebug) || h.records[0].Message != r.Message {
				t.Fatalf("level %d: server log got %v", level, h.records)
			}
			// Without a sink, at its own level.
			h.records = nil
			mustRunLogging(t, cfg, nil, "wasilog", params)
			if len(h.records) != 1 || h.records[0].Level != want || h.records[0].Message != r.Message {
				t.Fatalf("level %d without a sink: server log got %v", level, h.records)
			}
		}
	}
	t.Run("empty strings", func(t *testing.T) {
		var sink sinkRecords
		mustRunLogging(t, InstanceConfig{Kind: KindActivity}, &sink, "wasilog", `[2,"",""]`)
		if len(sink) != 1 || sink[0].Message != "" || sink[0].Context != "" {
			t.Errorf("sink got %+v", sink)
		}
	})
	t.Run("level out of range traps", func(t *testing.T) {
		var sink sinkRecords
		_, err := runLogging(t, InstanceConfig{Kind: KindActivity}, &sink, "wasilog", `[6,"","x"]`)
		var te *TrapError
		if !errors.As(err, &te) || !strings.Contains(err.Error(), "level 6 is not one of trace (0) to critical (5)") {
			t.Fatalf("Run = %v, want a trap naming the level", err)
		}
		if len(sink) != 0 {
			t.Errorf("sink got %+v", sink)
		}
	})
}

// The log op of guests built before wasi:logging reaches the same sink; what a guest logs
// during _initialize (the test guest's init logs "guest init") belongs to no execution.
func TestLogOpReachesTheSink(t *testing.T) {
	var sink sinkRecords
	out := mustRunLogging(t, InstanceConfig{Kind: KindActivity}, &sink, "hostcall", `[{"op":"log","level":"trace","message":"old"}]`)
	if string(out) != `{"ok":{"ok":null}}` {
		t.Fatalf("got %s", out)
	}
	if len(sink) != 1 || sink[0].Level != abi.LogTrace || sink[0].Message != "old" || sink[0].Context != "" {
		t.Errorf("sink got %+v, want the one trace record of the run", sink)
	}
	sink = nil
	mustRunLogging(t, InstanceConfig{Kind: KindActivity}, &sink, "hostcall", `[{"op":"log","level":"critical","message":"m","context":"c"}]`)
	if len(sink) != 1 || sink[0].Level != abi.LogCritical || sink[0].Context != "c" {
		t.Errorf("sink got %+v, want a critical record with context c", sink)
	}
}

func TestCaptureOutput(t *testing.T) {
	run := func(t *testing.T, fn string, l RunLogging) (sinkRecords, error) {
		t.Helper()
		var sink sinkRecords
		inst, err := testGuest.Instantiate(context.Background(), InstanceConfig{Kind: KindActivity})
		if err != nil {
			t.Fatal(err)
		}
		defer inst.Close(context.Background())
		l.Sink = &sink
		inst.SetLogging(l)
		_, err = inst.Run(context.Background(), RunInput{FFQN: "test:guest/api." + fn, ExecutionID: "E_TEST", Attempt: 1})
		return sink, err
	}
	t.Run("both", func(t *testing.T) {
		sink, err := run(t, "stdout", RunLogging{CaptureStdout: true, CaptureStderr: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(sink) != 2 || sink[0] != (LogRecord{Time: sink[0].Time, Level: abi.LogInfo, Context: "stdout", Message: "hello stdout"}) ||
			sink[1] != (LogRecord{Time: sink[1].Time, Level: abi.LogWarn, Context: "stderr", Message: "hello stderr"}) {
			t.Errorf("sink got %+v", sink)
		}
	})
	t.Run("none", func(t *testing.T) {
		if sink, err := run(t, "stdout", RunLogging{}); err != nil || len(sink) != 0 {
			t.Errorf("sink got %+v, %v; want nothing", sink, err)
		}
	})
	t.Run("a panic's message", func(t *testing.T) {
		sink, err := run(t, "panic", RunLogging{CaptureStderr: true})
		var te *TrapError
		if !errors.As(err, &te) {
			t.Fatalf("Run = %v, want a trap", err)
		}
		var lines []string
		for _, r := range sink {
			lines = append(lines, r.Message)
		}
		if len(lines) == 0 || lines[0] != "panic: boom" {
			t.Errorf("captured %q, want the panic first", lines)
		}
	})
}

func TestLineCaptureSplitsLongLines(t *testing.T) {
	var sink sinkRecords
	c := &lineCapture{inst: &Instance{logger: slog.New(slog.DiscardHandler), logs: &sink}, ctx: context.Background(), name: "stdout"}
	long := strings.Repeat("x", maxCaptureLine+10)
	c.Write([]byte("a\r\nb"))
	c.Write([]byte("c\n" + long + "\n"))
	c.Write([]byte("tail"))
	c.flush()
	var got []string
	for _, r := range sink {
		got = append(got, r.Message)
	}
	want := []string{"a", "bc", long[:maxCaptureLine], long[maxCaptureLine:], "tail"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("lines %q", got)
	}
}
