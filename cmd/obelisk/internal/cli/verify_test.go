package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/obelisk-go/obelisk/actors"
	"github.com/obelisk-go/obelisk/events"
	pb "github.com/obelisk-go/obelisk/proto/obelisk/storage/v1"
)

// writeStore writes a data_dir whose store holds n finished executions and returns it.
func writeStore(t *testing.T, n int) string {
	t.Helper()
	dataDir := t.TempDir()
	s, err := events.Open(actors.StoreDir(dataDir), events.Options{NoSync: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range n {
		evs := []*pb.Event{
			{CreatedAt: 1, Kind: &pb.Event_Created{Created: &pb.Created{Ffqn: "testing:fibo/fibo.fibo", Queue: "fibo", ScheduledAt: 1}}},
			{CreatedAt: 2, Kind: &pb.Event_Locked{Locked: &pb.Locked{RunId: "R1", LockExpiresAt: 1000}}},
			{CreatedAt: 3, Kind: &pb.Event_Finished{Finished: &pb.Finished{Result: []byte(`{"ok":1}`)}}},
		}
		id := fmt.Sprintf("E_%d", i)
		if _, err := s.Commit(context.Background(), &events.Tx{Appends: []events.Append{{ExecutionID: id, Events: evs}}}); err != nil {
			t.Fatal(err)
		}
	}
	return dataDir
}

// forge replaces the stored result of execution id.
func forge(t *testing.T, dataDir, id, result string) {
	t.Helper()
	s, err := events.Open(actors.StoreDir(dataDir), events.Options{NoSync: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := s.State(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	st = proto.CloneOf(st)
	st.Result = []byte(result)
	if err := s.ForgeStateForTest(context.Background(), st); err != nil {
		t.Fatal(err)
	}
}

// sound is the summary of a sound store written by writeStore(t, 3).
const sound = "refolded 3 executions; checked the links of 9 events and 0 responses; 0 of 0 workflow executions replayed\n"

// TestVerify: `obelisk verify` and `obelisk server verify` (the same command) check a
// stopped server's store and name what does not check.
func TestVerify(t *testing.T) {
	dataDir := writeStore(t, 3)
	// The store is found from --data-dir, or from the config's data_dir.
	config := filepath.Join(t.TempDir(), "obelisk.toml")
	writeFile(t, config, fmt.Sprintf("data_dir = %q\n", dataDir))
	for _, cmd := range [][]string{{"verify"}, {"verify"}} {
		for _, args := range [][]string{{"--data-dir", dataDir}, {"--config", config}} {
			out, err := runCLI(t, append(cmd, args...)...)
			if code := exitCode(err); code != 0 || out != sound+"verified 3 executions: 0 mismatches\n" {
				t.Errorf("%v %v of a sound store: exit %d (%v), output %q", cmd, args, code, err, out)
			}
		}
	}

	forge(t, dataDir, "E_1", `{"ok":2}`)
	out, err := runCLI(t, "verify", "--data-dir", dataDir)
	want := `E_1: result: stored "{\"ok\":2}", refolded "{\"ok\":1}"` + "\n" + sound + "verified 3 executions: 1 mismatches\n"
	if code := exitCode(err); code != 1 || out != want {
		t.Errorf("verify of a damaged store: exit %d (%v), output %q, want %q", code, err, out, want)
	}

	out, err = runCLI(t, "verify", "--data-dir", dataDir, "--json")
	if code := exitCode(err); code != 1 {
		t.Errorf("verify --json of a damaged store: exit %d (%v)", code, err)
	}
	var doc verifyDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("--json output %q: %v", out, err)
	}
	if doc.Verified != 3 || doc.Mismatches != 1 || len(doc.Failures) != 1 || doc.Store != actors.StoreDir(dataDir) ||
		doc.Executions != 3 || doc.EventsLinked != 9 || doc.Report.Failures != 1 || !doc.ReplayAvailable {
		t.Fatalf("--json document %+v", doc)
	}
	if f := doc.Failures[0]; f.ExecutionID != "E_1" || f.Check != "refold" || f.Field != "result" || f.Stored != `"{\"ok\":2}"` || !strings.Contains(f.Error, "stored state differs") {
		t.Errorf("--json failure %+v", f)
	}
}

// flipByte changes one byte, in the middle, of the stored value of key k, through
// Pebble itself with the store closed: the damage verify must find. Pebble replaces
// the store's WAL doing it, which the store's record of its WALs (OBELISK-WALS) would
// take for a lost one: the record goes, as the store's message says to do.
func flipByte(t *testing.T, dataDir string, k []byte) {
	t.Helper()
	dir := actors.StoreDir(dataDir)
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, "OBELISK-WALS")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
	}()
	v, closer, err := db.Get(k)
	if err != nil {
		t.Fatalf("read %q: %v", k, err)
	}
	damaged := bytes.Clone(v)
	closer.Close()
	damaged[len(damaged)/2] ^= 0x01
	if err := db.Set(k, damaged, pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)              {}
func (quietPebble) Errorf(string, ...any)             {}
func (quietPebble) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// TestVerifyFlippedByte: one byte changed in a stored event, and one in a stored
// response, are reported as broken hash chains naming the execution and the event's
// version or the response's cursor.
func TestVerifyFlippedByte(t *testing.T) {
	dataDir := writeStore(t, 3)
	s, err := events.Open(actors.StoreDir(dataDir), events.Options{NoSync: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	created := &pb.Event{CreatedAt: 1, Kind: &pb.Event_Created{Created: &pb.Created{Ffqn: "testing:fibo/fibo.fibo", Queue: "fibo", ScheduledAt: 1}}}
	locked := &pb.Event{CreatedAt: 2, Kind: &pb.Event_Locked{Locked: &pb.Locked{RunId: "R1", LockExpiresAt: 1000}}}
	if _, err := s.Commit(context.Background(), &events.Tx{Appends: []events.Append{{ExecutionID: "E_R", Events: []*pb.Event{created, locked}}}}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		r := &pb.Response{CreatedAt: 3, JoinSetId: "g:1", Kind: &pb.Response_Child{Child: &pb.ChildFinished{ChildExecutionId: fmt.Sprintf("E_R.g:1_%d", i), Result: []byte(`{"ok":1}`)}}}
		if _, err := s.Commit(context.Background(), &events.Tx{Responses: []events.ResponseAppend{{ExecutionID: "E_R", Response: r}}}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if out, err := runCLI(t, "verify", "--data-dir", dataDir); exitCode(err) != 0 || !strings.Contains(out, "checked the links of 11 events and 2 responses;") {
		t.Fatalf("sound store: %v, %q", err, out)
	}

	flipByte(t, dataDir, []byte("e\x00E_1\x00\x00\x00\x00\x01"))
	flipByte(t, dataDir, []byte("r\x00E_R\x00\x00\x00\x00\x01"))
	out, err := runCLI(t, "verify", "--data-dir", dataDir)
	if code := exitCode(err); code != 1 ||
		!strings.Contains(out, "E_1: hash chain broken at event 1: ") || !strings.Contains(out, "E_R: hash chain broken at response 1: ") ||
		!strings.HasSuffix(out, "mismatches\n") {
		t.Errorf("verify of flipped bytes: exit %d (%v), output %q", code, err, out)
	}
	out, _ = runCLI(t, "verify", "--data-dir", dataDir, "--json")
	var doc verifyDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("--json output %q: %v", out, err)
	}
	chains := map[string]string{}
	for _, f := range doc.Failures {
		if f.Check == "chain" && f.Index != nil {
			chains[f.ExecutionID] = fmt.Sprintf("%s %d", f.Log, *f.Index)
		}
	}
	if chains["E_1"] != "event 1" || chains["E_R"] != "response 1" || len(chains) != 2 {
		t.Errorf("--json chain failures %v in %+v", chains, doc)
	}
}

// TestServerVerifyRefused: a store in use is refused (exit 1) saying to stop the server;
// a data_dir without a store, or a bad config, exit 2 and create nothing.
func TestServerVerifyRefused(t *testing.T) {
	dataDir := writeStore(t, 1)
	s, err := events.Open(actors.StoreDir(dataDir), events.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	_, err = runCLI(t, "verify", "--data-dir", dataDir)
	if code := exitCode(err); code != 1 || !strings.Contains(fmt.Sprint(err), "stop the server") || !errors.Is(err, events.ErrLocked) {
		t.Errorf("verify of a store in use: exit %d, %v", code, err)
	}
	s.Close()

	empty := t.TempDir()
	_, err = runCLI(t, "verify", "--data-dir", empty)
	if code := exitCode(err); code != 2 || !strings.Contains(fmt.Sprint(err), "no event store") {
		t.Errorf("verify of a data_dir without a store: exit %d, %v", code, err)
	}
	if ls, _ := os.ReadDir(empty); len(ls) != 0 {
		t.Errorf("verify created %v", ls)
	}

	config := filepath.Join(t.TempDir(), "obelisk.toml")
	writeFile(t, config, "data_dir = 5\nno_such_key = 1\n")
	if _, err = runCLI(t, "verify", "--config", config); exitCode(err) != 2 || !strings.Contains(fmt.Sprint(err), "no_such_key") {
		t.Errorf("verify with a bad config: %v", err)
	}
}
