package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

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

func TestServerVerify(t *testing.T) {
	dataDir := writeStore(t, 3)
	// The store is found from --data-dir, or from the config's data_dir.
	config := filepath.Join(t.TempDir(), "obelisk.toml")
	writeFile(t, config, fmt.Sprintf("data_dir = %q\n", dataDir))
	for _, args := range [][]string{{"--data-dir", dataDir}, {"--config", config}} {
		out, err := runCLI(t, append([]string{"server", "verify"}, args...)...)
		if code := exitCode(err); code != 0 || out != "verified 3 executions: 0 mismatches\n" {
			t.Errorf("verify %v of a sound store: exit %d (%v), output %q", args, code, err, out)
		}
	}

	forge(t, dataDir, "E_1", `{"ok":2}`)
	out, err := runCLI(t, "server", "verify", "--data-dir", dataDir)
	want := `E_1: result: stored "{\"ok\":2}", refolded "{\"ok\":1}"` + "\nverified 3 executions: 1 mismatches\n"
	if code := exitCode(err); code != 1 || out != want {
		t.Errorf("verify of a damaged store: exit %d (%v), output %q, want %q", code, err, out, want)
	}

	out, err = runCLI(t, "server", "verify", "--data-dir", dataDir, "--json")
	if code := exitCode(err); code != 1 {
		t.Errorf("verify --json of a damaged store: exit %d (%v)", code, err)
	}
	var doc verifyDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("--json output %q: %v", out, err)
	}
	if doc.Verified != 3 || doc.Mismatches != 1 || len(doc.Failures) != 1 || doc.Store != actors.StoreDir(dataDir) {
		t.Fatalf("--json document %+v", doc)
	}
	if f := doc.Failures[0]; f.ExecutionID != "E_1" || f.Field != "result" || f.Stored != `"{\"ok\":2}"` || !strings.Contains(f.Error, "stored state differs") {
		t.Errorf("--json failure %+v", f)
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
	_, err = runCLI(t, "server", "verify", "--data-dir", dataDir)
	if code := exitCode(err); code != 1 || !strings.Contains(fmt.Sprint(err), "stop the server") || !errors.Is(err, events.ErrLocked) {
		t.Errorf("verify of a store in use: exit %d, %v", code, err)
	}
	s.Close()

	empty := t.TempDir()
	_, err = runCLI(t, "server", "verify", "--data-dir", empty)
	if code := exitCode(err); code != 2 || !strings.Contains(fmt.Sprint(err), "no event store") {
		t.Errorf("verify of a data_dir without a store: exit %d, %v", code, err)
	}
	if ls, _ := os.ReadDir(empty); len(ls) != 0 {
		t.Errorf("verify created %v", ls)
	}

	config := filepath.Join(t.TempDir(), "obelisk.toml")
	writeFile(t, config, "data_dir = 5\nno_such_key = 1\n")
	if _, err = runCLI(t, "server", "verify", "--config", config); exitCode(err) != 2 || !strings.Contains(fmt.Sprint(err), "no_such_key") {
		t.Errorf("verify with a bad config: %v", err)
	}
}
