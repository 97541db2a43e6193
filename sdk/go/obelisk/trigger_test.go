package obelisk

import (
	"encoding/json"
	"testing"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// TestCallWithID: the request carries the ID, and the result is decoded as Call's.
func TestCallWithID(t *testing.T) {
	var got abi.CallRequest
	answer := `{"ok":{"ok":55}}`
	ctx := Context{r: &runState{host: func(req []byte) ([]byte, error) {
		if err := json.Unmarshal(req, &got); err != nil {
			t.Fatal(err)
		}
		return []byte(answer), nil
	}}}
	v, err := CallWithID[uint64](ctx, "E_X", "testing:fibo/fibo.fibo", 10)
	if err != nil || v != 55 || got.ExecutionID != "E_X" || got.FFQN != "testing:fibo/fibo.fibo" || string(got.Params) != "[10]" {
		t.Fatalf("v %d, err %v, request %+v", v, err, got)
	}
	answer = `{"ok":{"err":"no"}}`
	if _, err := CallWithID[uint64](ctx, "E_X", "testing:fibo/fibo.fibo", 10); err == nil {
		t.Fatal("an err result gave no error")
	} else if e, ok := err.(*ErrResult); !ok || e.ExecutionID != "E_X" {
		t.Fatalf("err %#v", err)
	}
	var sched abi.ScheduleRequest
	ctx = Context{r: &runState{host: func(req []byte) ([]byte, error) {
		if err := json.Unmarshal(req, &sched); err != nil {
			t.Fatal(err)
		}
		return []byte(`{"ok":"E_Y"}`), nil
	}}}
	if id, err := ScheduleWithID(ctx, "E_Y", Now(), "testing:fibo/fibo.fibo", 1); err != nil || id != "E_Y" || sched.ExecutionID != "E_Y" || string(sched.ScheduleAt) != `"now"` {
		t.Fatalf("id %q, err %v, request %+v", id, err, sched)
	}
}
