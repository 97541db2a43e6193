package wasmhost

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// replayer answers every call with null and says whether it replays.
type replayer struct{ replaying bool }

func (r replayer) HostCall(context.Context, string, []byte) ([]byte, error) { return nil, nil }
func (r replayer) Replaying() bool                                          { return r.replaying }

// A host call of a handler that replays its history is not recorded again as an event
// of the attempt's span; one made past the history is.
func TestReplayedHostCallsAreNotSpanEvents(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	for _, replaying := range []bool{true, false} {
		exp.Reset()
		ctx, span := tp.Tracer("t").Start(context.Background(), "attempt")
		cfg := wfConfig(1)
		cfg.Handler = replayer{replaying}
		if _, err := runGuest(ctx, t, cfg, "hostcall", `[{"op":"nothing"}]`); err != nil {
			t.Fatal(err)
		}
		span.End()
		spans := exp.GetSpans()
		if len(spans) != 1 {
			t.Fatalf("%d spans", len(spans))
		}
		if n := len(spans[0].Events); replaying && n != 0 || !replaying && n != 1 {
			t.Errorf("replaying %v: %d span events %v", replaying, n, spans[0].Events)
		}
	}
}
