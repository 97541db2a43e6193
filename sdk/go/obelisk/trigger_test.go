package obelisk

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// TestDerivedID: the ID is a valid E_<ULID> holding the digest of the parts, the same
// for the same parts and different for parts split differently.
func TestDerivedID(t *testing.T) {
	id := DerivedID("line", "42")
	if id != DerivedID("line", "42") {
		t.Fatal("not deterministic")
	}
	if id == DerivedID("line4", "2") || id == DerivedID("line", "43") {
		t.Fatal("different parts gave the same ID")
	}
	u, err := ulid.ParseStrict(id[2:])
	if err != nil || id[:2] != "E_" {
		t.Fatalf("%s: %v", id, err)
	}
	sum := sha256.Sum256([]byte("4:line2:42"))
	if !bytes.Equal(u[:], sum[:16]) {
		t.Fatalf("%s holds %x, want %x", id, u[:], sum[:16])
	}
}

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
