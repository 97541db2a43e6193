package replicated_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/events/replicated"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// TestFoldDeterministic applies the same log (each entry encoded and decoded as the
// cluster does) to two fresh stores, in groups of different sizes, and compares what
// they hold byte for byte, and the outcome of every entry.
func TestFoldDeterministic(t *testing.T) {
	trees := func(ids ...string) []*events.Tx {
		var out []*events.Tx
		for _, id := range ids {
			out = append(out, treeTxs(id)...)
		}
		return out
	}
	interleaved := func() []*events.Tx {
		a, b := treeTxs("E_a"), treeTxs("E_b")
		var out []*events.Tx
		for i := range a {
			out = append(out, a[i], b[i])
		}
		return out
	}
	cases := []struct {
		name string
		log  []*events.Tx
	}{
		{"trees", trees("E_1", "E_2", "E_3")},
		{"interleaved", interleaved()},
		{"conflicting locks", []*events.Tx{
			appendTx("E_l", 0, "", createdEv("testing:a/b.c", "q", 1, 1)),
			appendTx("E_l", 1, "", lockedEv("R1", 2, 100)),
			appendTx("E_l", 1, "", lockedEv("R2", 2, 100)),      // refused: v1 is taken
			appendTx("E_l", 2, "R2", finishedEv(3, `{"ok":1}`)), // refused: R1 holds it
			appendTx("E_l", 2, "R1", finishedEv(3, `{"ok":1}`)),
		}},
		{"duplicate responses and KV conflicts", append(treeTxs("E_k"),
			&events.Tx{Responses: []events.ResponseAppend{{ExecutionID: "E_k", Response: &pb.Response{CreatedAt: 9, JoinSetId: "g:1", Kind: &pb.Response_Child{Child: &pb.ChildFinished{ChildExecutionId: events.ChildExecutionID("E_k", "g:1", 1)}}}}}},
			&events.Tx{KV: []events.KVWrite{{Bucket: "b", Key: "E_k", Value: "x", Check: true, ExpectedPresent: false}}},
			&events.Tx{KV: []events.KVWrite{{Bucket: "b", Key: "E_k", Value: "y", Check: true, ExpectedPresent: true, Expected: "done"}}},
		)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var snaps []map[string][]byte
			var outcomes [][]string
			for _, group := range []int{1, len(tc.log)} {
				s, err := events.Open(t.TempDir(), events.Options{NoSync: true, Logger: quiet()})
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for start := 0; start < len(tc.log); start += group {
					var queued []*events.Applying
					for i := start; i < min(start+group, len(tc.log)); i++ {
						tx, err := replicated.RoundTrip(tc.log[i])
						if err != nil {
							t.Fatal(err)
						}
						a, err := s.ApplyLogged(context.Background(), uint64(i+1), tx)
						if err != nil {
							t.Fatal(err)
						}
						queued = append(queued, a)
					}
					for _, a := range queued {
						states, err := a.Wait()
						got = append(got, fmt.Sprintf("%d states, err %v", len(states), err))
					}
				}
				if last, err := s.LastApplied(); err != nil || last != uint64(len(tc.log)) {
					t.Fatalf("last applied %d, %v; want %d", last, err, len(tc.log))
				}
				snaps = append(snaps, snapshotOf(t, s))
				outcomes = append(outcomes, got)
				verify(t, s)
				s.Close()
			}
			sameSnapshots(t, snaps[0], snaps[1], "one by one against one group")
			for i := range outcomes[0] {
				if outcomes[0][i] != outcomes[1][i] {
					t.Fatalf("entry %d: %s against %s", i+1, outcomes[0][i], outcomes[1][i])
				}
			}
		})
	}
}
