package events

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// chainStore returns a store with execution E_A: four events and two responses.
func chainStore(t *testing.T) *PebbleStore {
	t.Helper()
	s := gOpen(t, t.TempDir())
	gCommit(t, s, gAppend("E_A", 0, gCreated(1), gLocked("R1", 2)))
	for i := range 2 {
		gCommit(t, s, &Tx{Responses: []ResponseAppend{{ExecutionID: "E_A", Response: &pb.Response{CreatedAt: 3, JoinSetId: "g:1",
			Kind: &pb.Response_Child{Child: &pb.ChildFinished{ChildExecutionId: fmt.Sprintf("E_A.g:1_%d", i), Result: []byte(`{"ok":1}`)}}}}}})
	}
	gCommit(t, s, &Tx{Appends: []Append{{ExecutionID: "E_A", ExpectedVersion: 2, RunID: "R1", Events: []*pb.Event{gPersist(4), gPersist(5)}}}})
	return s
}

// checkA checks the chains of E_A in a view of s.
func checkA(t *testing.T, s *PebbleStore) (evs, responses ChainCounts, err error) {
	t.Helper()
	v, err := s.View()
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	st, err := s.loadState("E_A")
	if err != nil {
		t.Fatal(err)
	}
	return v.CheckChains(context.Background(), st)
}

// rewrite replaces the stored value of k through the database, bypassing the writer.
func rewrite(t *testing.T, s *PebbleStore, k, v []byte) {
	t.Helper()
	if err := s.db.Set(k, v, pebble.NoSync); err != nil {
		t.Fatal(err)
	}
}

func stored(t *testing.T, s *PebbleStore, k []byte) []byte {
	t.Helper()
	v, closer, err := s.db.Get(k)
	if err != nil {
		t.Fatal(err)
	}
	defer closer.Close()
	return bytes.Clone(v)
}

// TestChainEveryByte: the writer links every event and response, the links are hidden
// from readers, and flipping any one bit of any byte of a stored event or response is
// reported as a broken link at that event's version or that response's cursor.
func TestChainEveryByte(t *testing.T) {
	s := chainStore(t)
	evs, responses, err := checkA(t, s)
	if err != nil || evs.Linked != 4 || responses.Linked != 2 || evs.Unchained+responses.Unchained != 0 {
		t.Fatalf("sound store: events %+v, responses %+v, err %v", evs, responses, err)
	}
	read, err := s.Events(context.Background(), "E_A", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for v, ev := range read {
		if len(ev.Chain) != 0 {
			t.Errorf("event v%d as read has its link", v)
		}
	}
	for _, c := range []struct {
		key   []byte
		log   string
		index uint32
	}{{eventKey("E_A", 2), "event", 2}, {responseKey("E_A", 1), "response", 1}, {eventKey("E_A", 0), "event", 0}} {
		orig := stored(t, s, c.key)
		for i := range orig {
			for _, bit := range []byte{0x01, 0x80} {
				damaged := bytes.Clone(orig)
				damaged[i] ^= bit
				rewrite(t, s, c.key, damaged)
				_, _, err := checkA(t, s)
				var cb *ChainBreakError
				if !errors.As(err, &cb) || cb.ExecutionID != "E_A" || cb.Log != c.log || cb.Index != c.index {
					t.Fatalf("%s %d, byte %d of %d xor %#x: %v, want a break at that %s", c.log, c.index, i, len(orig), bit, err, c.log)
				}
			}
		}
		rewrite(t, s, c.key, orig)
	}
	if _, _, err := checkA(t, s); err != nil {
		t.Fatalf("restored store: %v", err)
	}
}

// TestChainStateAndGaps: a missing item, an item too many and a state whose link is
// not its log's last are broken chains too.
func TestChainStateAndGaps(t *testing.T) {
	s := chainStore(t)
	ev3 := stored(t, s, eventKey("E_A", 3))
	if err := s.db.Delete(eventKey("E_A", 3), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	_, _, err := checkA(t, s)
	var cb *ChainBreakError
	if !errors.As(err, &cb) || cb.Log != "event" || cb.Index != 3 {
		t.Errorf("last event deleted: %v", err)
	}
	rewrite(t, s, eventKey("E_A", 3), ev3)
	rewrite(t, s, eventKey("E_A", 4), ev3)
	if _, _, err := checkA(t, s); !errors.As(err, &cb) || cb.Log != "event" || cb.Index != 4 {
		t.Errorf("an event beyond the state's: %v", err)
	}
	if err := s.db.Delete(eventKey("E_A", 4), pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	st, err := s.loadState("E_A")
	if err != nil {
		t.Fatal(err)
	}
	forged := CloneState(st)
	forged.ResponseChain = bytes.Clone(forged.ResponseChain)
	forged.ResponseChain[0] ^= 1
	if err := s.ForgeStateForTest(context.Background(), forged); err != nil {
		t.Fatal(err)
	}
	if _, _, err := checkA(t, s); !errors.As(err, &cb) || cb.Log != "response" || cb.Index != 2 {
		t.Errorf("state's response link damaged: %v", err)
	}
}

// TestChainUnchained: a store written before chains (no links, no chained mark) is
// checked as far as it can be: its unlinked items are counted, not reported, and the
// chain of a stream starts at its first linked item; an unlinked item after a linked
// one is a break. In a store linked from its start, an unlinked item is a break.
func TestChainUnchained(t *testing.T) {
	s := chainStore(t)
	// Make E_A's first events and its first response look as written before chains.
	strip := func(k []byte) []byte {
		old := stored(t, s, k)
		body, _, linked, err := splitLink(old)
		if err != nil || !linked {
			t.Fatalf("%q: linked %v, %v", k, linked, err)
		}
		rewrite(t, s, k, body)
		return old
	}
	ev0 := strip(eventKey("E_A", 0))
	_, _, err := checkA(t, s)
	var cb *ChainBreakError
	if !errors.As(err, &cb) || cb.Log != "event" || cb.Index != 0 {
		t.Fatalf("an unlinked event in a store linked from its start: %v", err)
	}
	if err := s.db.Delete(chainedKey, pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	// The unlinked first event makes the second's link, chained to it, a break.
	if _, _, err := checkA(t, s); !errors.As(err, &cb) || cb.Log != "event" || cb.Index != 1 {
		t.Fatalf("a linked event chained to an unlinked one: %v", err)
	}
	rewrite(t, s, eventKey("E_A", 0), ev0)

	// An old store: E_B's events and state without links, then appended to by the
	// chaining writer.
	old := []*pb.Event{gCreated(1), gLocked("R1", 2)}
	gCommit(t, s, gAppend("E_B", 0, old...))
	for v := range old {
		strip(eventKey("E_B", uint32(v)))
	}
	st, err := s.loadState("E_B")
	if err != nil {
		t.Fatal(err)
	}
	st = CloneState(st)
	st.EventChain = nil
	if err := s.ForgeStateForTest(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	gCommit(t, s, &Tx{Appends: []Append{{ExecutionID: "E_B", ExpectedVersion: 2, RunID: "R1", Events: []*pb.Event{gPersist(3), gPersist(4)}}}})
	v, err := s.View()
	if err != nil {
		t.Fatal(err)
	}
	st, err = s.loadState("E_B")
	if err != nil {
		t.Fatal(err)
	}
	evs, _, err := v.CheckChains(context.Background(), st)
	v.Close()
	if err != nil || evs.Unchained != 2 || evs.Linked != 2 {
		t.Fatalf("an old stream continued with links: %+v, %v", evs, err)
	}
	strip(eventKey("E_B", 3))
	v, err = s.View()
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, _, err := v.CheckChains(context.Background(), st); !errors.As(err, &cb) || cb.ExecutionID != "E_B" || cb.Index != 3 {
		t.Fatalf("an unlinked event after a linked one: %v", err)
	}
}

// TestChainIgnoresGivenLink: a link set on an event given to the writer (a copy of a
// read event, say) is replaced by the writer's own.
func TestChainIgnoresGivenLink(t *testing.T) {
	s := gOpen(t, t.TempDir())
	ev := gCreated(1)
	ev.Chain = bytes.Repeat([]byte{7}, linkSize)
	gCommit(t, s, gAppend("E_A", 0, ev))
	if len(ev.Chain) != linkSize {
		t.Errorf("the writer changed the caller's event")
	}
	if _, _, err := checkA(t, s); err != nil {
		t.Fatal(err)
	}
}

// TestViewIsConsistent: a view does not see what was committed after it opened.
func TestViewIsConsistent(t *testing.T) {
	s := chainStore(t)
	v, err := s.View()
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	gCommit(t, s, gAppend("E_C", 0, gCreated(9)))
	gCommit(t, s, &Tx{Appends: []Append{{ExecutionID: "E_A", ExpectedVersion: 4, RunID: "R1", Events: []*pb.Event{gPersist(6)}}}})
	var ids []string
	err = v.AllStates(context.Background(), func(st *pb.ExecutionState) error {
		ids = append(ids, st.ExecutionId)
		if _, _, err := v.CheckChains(context.Background(), st); err != nil {
			return err
		}
		evs, err := v.Events(context.Background(), st.ExecutionId, 0, 0)
		if err != nil || len(evs) != int(st.NextVersion) {
			return fmt.Errorf("%s: %d events for v%d: %v", st.ExecutionId, len(evs), st.NextVersion, err)
		}
		return nil
	})
	if err != nil || len(ids) != 1 || ids[0] != "E_A" {
		t.Fatalf("view: %v, %v", ids, err)
	}
}

// TestChainLongFlushedStream: the links of a long stream read from tables (not the
// memtable), through a cache much smaller than the stream, so that the iterator moves
// across many blocks. A link kept from an iterator's value without a copy is caught
// under Pebble's invariants build (go test -tags invariants), which mangles the value
// when the iterator moves; a server's store hit it in the throughput benchmark.
func TestChainLongFlushedStream(t *testing.T) {
	s, err := Open(t.TempDir(), Options{NoSync: true, CacheSize: 64 << 10, Logger: gOpen(t, t.TempDir()).opts.Logger})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	gCommit(t, s, gAppend("E_A", 0, gCreated(1), gLocked("R1", 2)))
	const n = 4000
	for v := uint32(2); v < n; v += 100 {
		evs := make([]*pb.Event, 0, 100)
		for range min(100, n-v) {
			evs = append(evs, gPersist(int64(v)))
		}
		gCommit(t, s, &Tx{Appends: []Append{{ExecutionID: "E_A", ExpectedVersion: v, RunID: "R1", Events: evs}}})
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Compact(context.Background(), []byte{0}, []byte{0xff}, true); err != nil {
		t.Fatal(err)
	}
	evs, _, err := checkA(t, s)
	if err != nil || evs.Linked != n {
		t.Fatalf("%+v, %v", evs, err)
	}
}

// TestChainCopiedHistory: a history appended with its responses (a fork's copy) is
// linked like any other.
func TestChainCopiedHistory(t *testing.T) {
	s := chainStore(t)
	evs, err := s.Events(context.Background(), "E_A", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	resps, err := s.Responses(context.Background(), "E_A", 0)
	if err != nil {
		t.Fatal(err)
	}
	gCommit(t, s, &Tx{Appends: []Append{{ExecutionID: "E_F", Events: evs, Responses: resps}}})
	v, err := s.View()
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	st, err := s.loadState("E_F")
	if err != nil {
		t.Fatal(err)
	}
	e, r, err := v.CheckChains(context.Background(), st)
	if err != nil || e.Linked != len(evs) || r.Linked != len(resps) || r.Linked == 0 {
		t.Fatalf("copied history: events %+v, responses %+v, %v", e, r, err)
	}
}

// BenchmarkMarshalLinked measures what a link adds to the marshalling of an event on
// the write path: plain is the marshalling alone, as before chains.
func BenchmarkMarshalLinked(b *testing.B) {
	ev := &pb.Event{CreatedAt: 1, Kind: &pb.Event_History{History: &pb.HistoryEvent{Kind: &pb.HistoryEvent_JoinSetRequest{JoinSetRequest: &pb.JoinSetRequest{
		JoinSetId: "o:1-fibo", Request: &pb.JoinSetRequest_Child{Child: &pb.ChildExecutionRequest{ChildExecutionId: "E_01M96X54HA0YCN1E1FD2YKB2TA.o:1-fibo_1", Ffqn: "testing:fibo/fibo.fibo", Params: []byte("[10]")}}}}}}}
	prev := chainSeed(chainEvents, "E_01M96X54HA0YCN1E1FD2YKB2TA")
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := proto.Marshal(ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("linked", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, _, err := marshalLinked(ev, prev); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestChainedSince: a store upgraded to chains is marked, once, with the last position
// given before; an execution created after the mark whose links were all stripped (its
// state's too, as a careful forger would) is a break, not "unchained", while the
// executions from before the upgrade still count as unchained.
func TestChainedSince(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := gOpen(t, dir)
	// stripAll makes id's events and state look as written before chains.
	stripAll := func(s *PebbleStore, id string, n uint32) {
		t.Helper()
		for v := range n {
			body, _, linked, err := splitLink(stored(t, s, eventKey(id, v)))
			if err != nil || !linked {
				t.Fatalf("%s v%d: linked %v, %v", id, v, linked, err)
			}
			rewrite(t, s, eventKey(id, v), body)
		}
		st, err := s.loadState(id)
		if err != nil {
			t.Fatal(err)
		}
		st = CloneState(st)
		st.EventChain = nil
		if err := s.ForgeStateForTest(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	check := func(s *PebbleStore, id string) (ChainCounts, error) {
		t.Helper()
		v, err := s.View()
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		st, err := s.loadState(id)
		if err != nil {
			t.Fatal(err)
		}
		evs, _, err := v.CheckChains(ctx, st)
		return evs, err
	}
	gCommit(t, s, gAppend("E_OLD", 0, gCreated(1), gLocked("R1", 2)))
	stripAll(s, "E_OLD", 2)
	if err := s.db.Delete(chainedKey, pebble.Sync); err != nil { // a store from before chains
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = gOpen(t, dir) // the upgrade
	if got := stored(t, s, chainedSinceKey); !bytes.Equal(got, u64(2)) {
		t.Fatalf("chained-since mark %x, want position 2", got)
	}
	if evs, err := check(s, "E_OLD"); err != nil || evs.Unchained != 2 {
		t.Fatalf("an execution from before the upgrade: %+v, %v", evs, err)
	}
	gCommit(t, s, gAppend("E_NEW", 0, gCreated(3), gLocked("R1", 4)))
	if evs, err := check(s, "E_NEW"); err != nil || evs.Linked != 2 {
		t.Fatalf("a sound new execution: %+v, %v", evs, err)
	}
	stripAll(s, "E_NEW", 2)
	var cb *ChainBreakError
	if _, err := check(s, "E_NEW"); !errors.As(err, &cb) || cb.ExecutionID != "E_NEW" || cb.Log != "event" || cb.Index != 0 {
		t.Fatalf("a new execution stripped of its links: %v, want a break at event 0", err)
	}
	// The mark is written once: a later Open keeps it.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = gOpen(t, dir)
	if got := stored(t, s, chainedSinceKey); !bytes.Equal(got, u64(2)) {
		t.Fatalf("chained-since mark after a reopen %x, want position 2", got)
	}
	if _, err := check(s, "E_NEW"); !errors.As(err, &cb) || cb.Index != 0 {
		t.Fatalf("after a reopen: %v", err)
	}
	if _, closer, err := s.db.Get(chainedKey); !errors.Is(err, pebble.ErrNotFound) {
		if err == nil {
			closer.Close()
		}
		t.Fatalf("an upgraded store marked as linked from its start: %v", err)
	}
}

// TestViewInChunks: a view's AllStates moves to a new snapshot every chunk executions,
// so it does not pin the store for the whole run: an execution of a later chunk is seen
// as it is when its chunk begins (with a commit made during an earlier chunk), and each
// execution's state, events and links still agree, though the writer commits to them
// all the while.
func TestViewInChunks(t *testing.T) {
	ctx := context.Background()
	s := gOpen(t, t.TempDir())
	ids := []string{"E_1", "E_2", "E_3", "E_4", "E_5"}
	next := map[string]uint32{}
	for _, id := range ids {
		gCommit(t, s, gAppend(id, 0, gCreated(1), gLocked("R1", 2)))
		next[id] = 2
	}
	persist := func(id string) {
		gCommit(t, s, &Tx{Appends: []Append{{ExecutionID: id, ExpectedVersion: next[id], RunID: "R1", Events: []*pb.Event{gPersist(3)}}}})
		next[id]++
	}
	v, err := s.View()
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	v.chunk = 2
	seen := map[string]uint32{}
	err = v.AllStates(ctx, func(st *pb.ExecutionState) error {
		seen[st.ExecutionId] = st.NextVersion
		if _, _, err := v.CheckChains(ctx, st); err != nil {
			return err
		}
		evs, err := v.Events(ctx, st.ExecutionId, 0, 0)
		if err != nil || len(evs) != int(st.NextVersion) {
			return fmt.Errorf("%s: %d events for v%d: %v", st.ExecutionId, len(evs), st.NextVersion, err)
		}
		for _, id := range ids { // the writer goes on, with this one too
			persist(id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// E_1 and E_2 are of the first snapshot; E_3 and E_4 of the second, taken after two
	// rounds of commits; E_5 of the third, after four.
	want := map[string]uint32{"E_1": 2, "E_2": 2, "E_3": 4, "E_4": 4, "E_5": 6}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("versions seen %v, want %v", seen, want)
	}
}

// TestChainBothKinds: events are linked by the hash of their body (field 101, the hash
// taken by Commit), responses as before (field 100); a stream whose older events carry
// links of the first kind, as a store written before the second existed holds, still
// checks, and reads return the same events from either.
func TestChainBothKinds(t *testing.T) {
	ctx := context.Background()
	s := chainStore(t)
	for v := range uint32(4) {
		_, _, ofBody, linked, err := splitLinkKind(stored(t, s, eventKey("E_A", v)))
		if err != nil || !linked || !ofBody {
			t.Fatalf("event %d: linked %v, of its body's hash %v, %v", v, linked, ofBody, err)
		}
	}
	if _, _, ofBody, linked, err := splitLinkKind(stored(t, s, responseKey("E_A", 0))); err != nil || !linked || ofBody {
		t.Fatalf("response 0: linked %v, of its body's hash %v, %v", linked, ofBody, err)
	}
	want, err := s.Events(ctx, "E_A", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Relink E_A's first three events with links of the first kind, as older writers did.
	prev := chainSeed(chainEvents, "E_A")
	for v := range uint32(3) {
		body, _, _, err := splitLink(stored(t, s, eventKey("E_A", v)))
		if err != nil {
			t.Fatal(err)
		}
		ev := &pb.Event{}
		if err := proto.Unmarshal(body, ev); err != nil {
			t.Fatal(err)
		}
		b, link, err := marshalLinked(ev, prev)
		if err != nil {
			t.Fatal(err)
		}
		rewrite(t, s, eventKey("E_A", v), b)
		prev = link
	}
	// The last event, of the second kind, chains to the third's new link.
	body, _, _, err := splitLink(stored(t, s, eventKey("E_A", 3)))
	if err != nil {
		t.Fatal(err)
	}
	b, link := linkPrepared(preparedEvent{body: bytes.Clone(body), sum: sha256.Sum256(body)}, prev)
	rewrite(t, s, eventKey("E_A", 3), b)
	st, err := s.loadState("E_A")
	if err != nil {
		t.Fatal(err)
	}
	st = CloneState(st)
	st.EventChain = link
	if err := s.ForgeStateForTest(ctx, st); err != nil {
		t.Fatal(err)
	}
	if evs, _, err := checkA(t, s); err != nil || evs.Linked != 4 {
		t.Fatalf("a stream of both kinds: %+v, %v", evs, err)
	}
	got, err := s.Events(ctx, "E_A", 0, 0)
	if err != nil || len(got) != len(want) {
		t.Fatalf("events read: %d, %v", len(got), err)
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) || len(got[i].Chain) != 0 || len(got[i].ProtoReflect().GetUnknown()) != 0 {
			t.Fatalf("event %d read as %v, want %v without its link", i, got[i], want[i])
		}
	}
	// The old kind's link in the place of the new one's (or the reverse) is a break.
	v3 := stored(t, s, eventKey("E_A", 3))
	swapped := append(bytes.Clone(v3[:len(v3)-chainSuffix]), linkTags[0]...)
	rewrite(t, s, eventKey("E_A", 3), append(swapped, v3[len(v3)-linkSize:]...))
	var cb *ChainBreakError
	if _, _, err := checkA(t, s); !errors.As(err, &cb) || cb.Index != 3 {
		t.Fatalf("a link of the other kind: %v, want a break at event 3", err)
	}
}

// TestReadNoLinkAllocation: decoding a stored event costs no more allocations than
// decoding its body alone: the link is cut off, not decoded and dropped.
func TestReadNoLinkAllocation(t *testing.T) {
	s := chainStore(t)
	for _, k := range [][]byte{eventKey("E_A", 2), responseKey("E_A", 1)} {
		v := stored(t, s, k)
		body, _, _, err := splitLink(v)
		if err != nil {
			t.Fatal(err)
		}
		newMsg := func() proto.Message {
			if k[0] == tagEvent {
				return &pb.Event{}
			}
			return &pb.Response{}
		}
		plain := testing.AllocsPerRun(100, func() { _ = proto.Unmarshal(body, newMsg()) })
		linked := testing.AllocsPerRun(100, func() {
			if err := unmarshalStored(v, newMsg()); err != nil {
				t.Fatal(err)
			}
		})
		if linked > plain {
			t.Errorf("%q: %v allocations to decode it, %v for its body alone", k, linked, plain)
		}
	}
}

// TestCommitAgainChangedTx: a Tx committed again after its events were changed (a
// conflict retried, say) is stored with the events as they are now, not as Commit
// marshalled them the first time.
func TestCommitAgainChangedTx(t *testing.T) {
	ctx := context.Background()
	s := gOpen(t, t.TempDir())
	gCommit(t, s, gAppend("E_A", 0, gCreated(1), gLocked("R1", 2)))
	tx := &Tx{Appends: []Append{{ExecutionID: "E_A", ExpectedVersion: 5, RunID: "R1", Events: []*pb.Event{gPersist(3)}}}}
	var ce *ConflictError
	if _, err := s.Commit(ctx, tx); !errors.As(err, &ce) {
		t.Fatalf("a wrong version: %v", err)
	}
	tx.Appends[0].ExpectedVersion = 2
	tx.Appends[0].Events[0].GetHistory().GetPersist().Value = []byte("2")
	gCommit(t, s, tx)
	evs, err := s.Events(ctx, "E_A", 2, 0)
	if err != nil || len(evs) != 1 || string(evs[0].GetHistory().GetPersist().Value) != "2" {
		t.Fatalf("stored %v %v, want the changed event", evs, err)
	}
	if _, _, err := checkA(t, s); err != nil {
		t.Fatal(err)
	}
}
