package wasmhost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// stepAnswer is the test handler's answer to step i: some answers are larger than the
// guest's buffer (host_take), so that a resumed call is answered both ways.
func stepAnswer(i int) []byte {
	if i%3 == 2 {
		return []byte(fmt.Sprintf(`{"i":%d,"pad":%q}`, i, strings.Repeat("x", 300+i)))
	}
	return []byte(fmt.Sprintf(`{"i":%d}`, i))
}

func stepOf(t *testing.T, req []byte) int {
	var q struct{ I int }
	if err := json.Unmarshal(req, &q); err != nil {
		t.Errorf("step request %s: %v", req, err)
	}
	return q.I
}

var errParkedHere = errors.New("parked here")

// parkAt runs in on an instance of m (seed 7) until its k-th host call, captures the
// instance parked there and aborts it; it returns the image.
func parkAt(t *testing.T, ctx context.Context, m *Module, k int, in RunInput) []byte {
	t.Helper()
	var image []byte
	cfg := wfConfig(7)
	cfg.Handler = HostHandlerFunc(func(ctx context.Context, op string, req []byte) ([]byte, error) {
		i := stepOf(t, req)
		if i < k {
			return stepAnswer(i), nil
		}
		var err error
		if image, err = CaptureParked(ctx); err != nil {
			t.Errorf("CaptureParked: %v", err)
		}
		return nil, errParkedHere
	})
	inst, err := m.Instantiate(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inst.Run(ctx, in); !errors.Is(err, errParkedHere) || image == nil {
		t.Fatalf("run to call %d: %v (image: %v)", k, err, image != nil)
	}
	return image
}

// TestParkedResumeEqualsRun: an instance captured while parked in its k-th host call and
// resumed in a fresh instance (answering that call) returns exactly what an instance
// that ran through returns, and makes the same calls after k; so does a resumed run
// captured again and resumed again.
func TestParkedResumeEqualsRun(t *testing.T) {
	ctx := context.Background()
	const n = 8
	s, err := testGuest.waitSnapshot(ctx)
	if err != nil || s == nil || testGuest.variant == nil || testGuest.variant.Resume == nil {
		t.Fatalf("the test guest must be resumable: snapshot %v %v, variant %+v", s != nil, err, testGuest.variant)
	}
	params := []byte(fmt.Sprintf("[%d]", n))
	in := RunInput{FFQN: "test:guest/api.steps", Params: params, ExecutionID: "E_TEST", Attempt: 1}

	var want []byte
	var calls []int
	{
		cfg := wfConfig(7)
		cfg.Handler = HostHandlerFunc(func(ctx context.Context, op string, req []byte) ([]byte, error) {
			i := stepOf(t, req)
			calls = append(calls, i)
			return stepAnswer(i), nil
		})
		inst, err := testGuest.Instantiate(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if want, err = inst.Run(ctx, in); err != nil {
			t.Fatal(err)
		}
	}

	for _, k := range []int{0, 2, 5} {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			// Run until the k-th call, capture, abort (the instance is gone).
			image := parkAt(t, ctx, testGuest, k, in)

			// Resume: the pending call is k; then k+1... Halfway, capture again.
			var got []int
			again := k + (n-k)/2
			var image2 []byte
			handler := func(capture bool) HostHandler {
				return HostHandlerFunc(func(ctx context.Context, op string, req []byte) ([]byte, error) {
					i := stepOf(t, req)
					got = append(got, i)
					if capture && i == again {
						var err error
						if image2, err = CaptureParked(ctx); err != nil {
							t.Errorf("CaptureParked: %v", err)
						}
						return nil, errParkedHere
					}
					return stepAnswer(i), nil
				})
			}
			answer := func(i int) Answer {
				return func(context.Context) ([]byte, error) { got = append(got, i); return stepAnswer(i), nil }
			}
			cfg := wfConfig(99) // the image's clock and random source win over the config's
			cfg.Handler = handler(true)
			inst, err := testGuest.ResumeParked(ctx, cfg, image, answer(k))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := inst.Run(ctx, in); !errors.Is(err, errParkedHere) || image2 == nil {
				t.Fatalf("resumed run to the %d-th call: %v", again, err)
			}
			cfg.Handler = handler(false)
			inst, err = testGuest.ResumeParked(ctx, cfg, image2, answer(again))
			if err != nil {
				t.Fatal(err)
			}
			out, err := inst.Run(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("resumed output differs from the run's:\n got %s\nwant %s", out, want)
			}
			wantCalls := append(append([]int(nil), calls[k:again+1]...), calls[again:]...)
			if fmt.Sprint(got) != fmt.Sprint(wantCalls) {
				t.Errorf("calls after resuming: %v, want %v", got, wantCalls)
			}
		})
	}
}

// TestParkedImageRejected: an image that is corrupt, truncated or of another shape is
// refused with an error, and nothing runs.
func TestParkedImageRejected(t *testing.T) {
	ctx := context.Background()
	var image []byte
	cfg := wfConfig(1)
	cfg.Handler = HostHandlerFunc(func(ctx context.Context, op string, req []byte) ([]byte, error) {
		image, _ = CaptureParked(ctx)
		return nil, errParkedHere
	})
	inst, err := testGuest.Instantiate(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inst.Run(ctx, RunInput{FFQN: "test:guest/api.steps", Params: []byte("[3]"), ExecutionID: "E_TEST", Attempt: 1}); !errors.Is(err, errParkedHere) || image == nil {
		t.Fatalf("run: %v, image %d bytes", err, len(image))
	}
	never := func(context.Context) ([]byte, error) { t.Error("answer called for a refused image"); return nil, nil }
	bad := map[string][]byte{
		"empty":     nil,
		"magic":     append([]byte("OBKPARK9"), image[8:]...),
		"truncated": image[:len(image)-1],
		"trailing":  append(append([]byte(nil), image...), 0),
		"shape":     append(append([]byte(nil), image[:8]...), append([]byte{0xff, 0xff, 0xff, 0x7f}, image[12:]...)...),
	}
	for name, b := range bad {
		if _, err := testGuest.ResumeParked(ctx, wfConfig(1), b, never); err == nil {
			t.Errorf("%s: image accepted", name)
		}
	}
	if _, err := originalModule(t).ResumeParked(ctx, wfConfig(1), image, never); !errors.Is(err, ErrNotResumable) {
		t.Errorf("module without a variant: %v, want ErrNotResumable", err)
	}
}

// TestCaptureOutsideCall: CaptureParked refuses a context that is not a host call's.
func TestCaptureOutsideCall(t *testing.T) {
	if _, err := CaptureParked(context.Background()); !errors.Is(err, ErrNotResumable) {
		t.Fatalf("CaptureParked outside a call: %v", err)
	}
}
