package replicated_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/events/eventstest"
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

// TestLogMatchesCommit: random valid histories (eventstest), applied as a log (each Tx
// encoded and decoded, then ApplyLogged) and committed to a PebbleStore, leave the same
// bytes: the replicated path is the single node's.
func TestLogMatchesCommit(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		h := eventstest.Histories("E_P", eventstest.Options{MaxSteps: 30}).Draw(rt, "history")
		var txs []*events.Tx
		for _, s := range h.Steps {
			if s.Event != nil {
				txs = append(txs, appendTx(h.ID, s.Version, s.RunID, s.Event))
			} else {
				r := proto.CloneOf(s.Response)
				r.Cursor, r.AtVersion = 0, 0 // set by the store
				txs = append(txs, &events.Tx{Responses: []events.ResponseAppend{{ExecutionID: h.ID, Response: r}}})
			}
		}
		open := func() *events.PebbleStore {
			s, err := events.Open("/store", events.Options{NoSync: true, Logger: quiet(), FS: vfs.NewMem()})
			if err != nil {
				rt.Fatal(err)
			}
			return s
		}
		local, logged := open(), open()
		defer local.Close()
		defer logged.Close()
		for i, tx := range txs {
			_, errLocal := local.Commit(context.Background(), tx)
			dec, err := replicated.RoundTrip(tx)
			if err != nil {
				rt.Fatal(err)
			}
			a, err := logged.ApplyLogged(context.Background(), uint64(i+1), dec)
			if err != nil {
				rt.Fatal(err)
			}
			_, errLogged := a.Wait()
			if fmt.Sprint(errLocal) != fmt.Sprint(errLogged) {
				rt.Fatalf("step %d: commit says %v, the log %v", i, errLocal, errLogged)
			}
		}
		sameSnapshots(t, snapshotOf(t, local), snapshotOf(t, logged), "log against commit")
	})
}
