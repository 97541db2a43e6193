package obelisktrigger

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

// TestMain registers one function, run as RunFFQN with the run number as its attempt.
func TestMainRuns(t *testing.T) {
	var runs []int
	fail := true
	Main(func(ctx obelisk.Context) error {
		runs = append(runs, Run(ctx))
		if fail {
			return errors.New("stream ended")
		}
		return nil
	})
	if out := string((&obelisk.TestHost{Attempt: 1}).Run(RunFFQN)); out != `{"err":"stream ended"}` {
		t.Fatalf("first run: %s", out)
	}
	fail = false
	if out := string((&obelisk.TestHost{Attempt: 2}).Run(RunFFQN)); out != `{"ok":null}` {
		t.Fatalf("second run: %s", out)
	}
	if len(runs) != 2 || runs[0] != 1 || runs[1] != 2 {
		t.Fatalf("runs %v", runs)
	}
}

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
