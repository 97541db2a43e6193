package events_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/obelisk-go/obelisk/events"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

func logLines(msgs ...string) []events.LogLine {
	out := make([]events.LogLine, len(msgs))
	for i, m := range msgs {
		out[i] = events.LogLine{Time: int64(100 + i), Level: abi.LogInfo, Attempt: 1, RunID: "R1", Context: "ctx", Message: m}
	}
	return out
}

func messages(lines []events.LogLine) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = fmt.Sprintf("%d:%s", l.Seq, l.Message)
	}
	return out
}

func TestLogsOrderBoundAndOverflow(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir(), events.Options{NoSync: true, MaxLogsPerExecution: 4})
	// Lines in the Tx that creates the execution, then with an append, then alone.
	tx := appendTx("E_1", 0, "", createdEv("testing:a/b.c", "q", 1, 1))
	tx.Logs = []events.LogAppend{{ExecutionID: "E_1", Lines: logLines("a", "b")}}
	mustCommit(t, s, tx)
	tx = appendTx("E_1", 1, "", lockedEv("R1", 2, 1000))
	tx.Logs = []events.LogAppend{{ExecutionID: "E_1", Lines: logLines("c")}}
	mustCommit(t, s, tx)
	mustCommit(t, s, &events.Tx{Logs: []events.LogAppend{{ExecutionID: "E_1", Lines: logLines("d", "e", "f")}}})

	page, err := s.Logs(ctx, "E_1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(messages(page.Lines)), "[0:a 1:b 2:c 3:d]"; got != want {
		t.Errorf("lines %s, want %s (oldest kept)", got, want)
	}
	if page.Stored != 4 || page.Dropped != 2 || page.Total() != 6 {
		t.Errorf("stats %+v, want 4 stored, 2 dropped", page.LogStats)
	}
	l := page.Lines[0]
	if l.Time != 100 || l.Level != abi.LogInfo || l.Attempt != 1 || l.RunID != "R1" || l.Context != "ctx" {
		t.Errorf("line decoded as %+v", l)
	}
	// Resuming after a cursor, and a limit.
	page, err = s.Logs(ctx, "E_1", 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(messages(page.Lines)); got != "[2:c]" {
		t.Errorf("from 2 limit 1: %s", got)
	}
	if st, err := s.LogStats(ctx, "E_1"); err != nil || st.Dropped != 2 {
		t.Errorf("LogStats = %+v, %v", st, err)
	}
}

func TestLogsGoWithTheirTx(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	mustCommit(t, s, appendTx("E_1", 0, "", createdEv("testing:a/b.c", "q", 1, 1)))
	// A refused Tx (wrong expected version) stores none of its lines.
	tx := appendTx("E_1", 7, "", persistEv(2))
	tx.Logs = []events.LogAppend{{ExecutionID: "E_1", Lines: logLines("lost")}}
	var ce *events.ConflictError
	if _, err := s.Commit(ctx, tx); !errors.As(err, &ce) {
		t.Fatalf("commit with a wrong version: %v", err)
	}
	// Lines of an execution that does not exist are refused.
	if _, err := s.Commit(ctx, &events.Tx{Logs: []events.LogAppend{{ExecutionID: "E_nope", Lines: logLines("x")}}}); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("lines of a missing execution: %v", err)
	}
	page, err := s.Logs(ctx, "E_1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Lines) != 0 || page.Total() != 0 {
		t.Errorf("got %v %+v, want nothing", messages(page.Lines), page.LogStats)
	}
	// An execution without lines has an empty log, not an error.
	if page, err := s.Logs(ctx, "E_nope", 0, 0); err != nil || len(page.Lines) != 0 {
		t.Errorf("Logs of a missing execution = %v, %v", page, err)
	}
}

func TestLogsConcurrentCommitsKeepEveryLine(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir, events.Options{NoSync: true})
	mustCommit(t, s, appendTx("E_1", 0, "", createdEv("testing:a/b.c", "q", 1, 1)))
	// Commits that share a group must not give two lines one sequence number.
	const writers, each = 8, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				lines := logLines(fmt.Sprintf("w%d-%d", w, i))
				if _, err := s.Commit(ctx, &events.Tx{Logs: []events.LogAppend{{ExecutionID: "E_1", Lines: lines}}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	s.Close()
	s = openStore(t, dir, events.Options{NoSync: true})
	page, err := s.Logs(ctx, "E_1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Lines) != writers*each || page.Stored != writers*each {
		t.Fatalf("%d lines, stats %+v, want %d", len(page.Lines), page.LogStats, writers*each)
	}
	seen := map[string]bool{}
	last := map[int]int{}
	for i, l := range page.Lines {
		if l.Seq != uint64(i) {
			t.Fatalf("line %d has seq %d", i, l.Seq)
		}
		seen[l.Message] = true
		// Each writer's lines keep their order.
		var w, n int
		fmt.Sscanf(l.Message, "w%d-%d", &w, &n)
		if prev, ok := last[w]; ok && n <= prev {
			t.Errorf("writer %d: line %d after %d", w, n, prev)
		}
		last[w] = n
	}
	if len(seen) != writers*each {
		t.Errorf("%d distinct lines, want %d", len(seen), writers*each)
	}
}

func TestLogsNoneKept(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir(), events.Options{NoSync: true, MaxLogsPerExecution: -1})
	tx := appendTx("E_1", 0, "", createdEv("testing:a/b.c", "q", 1, 1))
	tx.Logs = []events.LogAppend{{ExecutionID: "E_1", Lines: logLines("a", "b")}}
	mustCommit(t, s, tx)
	page, err := s.Logs(ctx, "E_1", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Lines) != 0 || page.Stored != 0 || page.Dropped != 2 {
		t.Errorf("got %v %+v, want no line and 2 dropped", messages(page.Lines), page.LogStats)
	}
}
