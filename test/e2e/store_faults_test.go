package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/obelisk-go/obelisk/proto/obelisk/v1"
	"github.com/obelisk-go/obelisk/test/harness"
)

// configOf returns the obelisk.toml of a harness server whose event store is storeDir
// (Options.Prepare's argument): <dir>/data/store and <dir>/obelisk.toml.
func configOf(storeDir string) string {
	return filepath.Join(filepath.Dir(filepath.Dir(storeDir)), "obelisk.toml")
}

// serverProcess starts `obelisk server run` on a config, its output in a file.
func serverProcess(t *testing.T, config string) (cmd *exec.Cmd, output func() string, exited chan error) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "server.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(harness.Binary(), "server", "run", "--config", config)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	return cmd, func() string { b, _ := os.ReadFile(logPath); return string(b) }, exited
}

// waitExit waits for a server process to exit and returns its exit code.
func waitExit(t *testing.T, exited chan error, output func() string) int {
	t.Helper()
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(2 * time.Minute):
		t.Fatalf("the server did not exit in 2 minutes:\n%s", output())
		return 0
	}
}

// TestCrashMissingWAL: after a SIGKILL, a store whose newest WAL file was deleted is
// refused with a message naming the file, instead of starting without the executions
// acknowledged since the last flush.
func TestCrashMissingWAL(t *testing.T) {
	t.Parallel()
	var storeDir string
	s := harness.Start(t, harness.Options{Prepare: func(dir string) { storeDir = dir }})
	for range 50 {
		s.Submit("testing:fibo/fibo.fibo", "[10]")
	}
	s.Kill()
	wals, err := filepath.Glob(filepath.Join(storeDir, "*.log"))
	if err != nil || len(wals) == 0 {
		t.Fatalf("no WAL in %s: %v", storeDir, err)
	}
	slices.Sort(wals)
	newest := wals[len(wals)-1]
	if err := os.Remove(newest); err != nil {
		t.Fatal(err)
	}
	_, output, exited := serverProcess(t, configOf(storeDir))
	code := waitExit(t, exited, output)
	out := output()
	if code == 0 || !strings.Contains(out, filepath.Base(newest)) || !strings.Contains(out, "missing") {
		t.Fatalf("restart without %s: exit code %d, want non-zero with a message naming it:\n%s", newest, code, out)
	}
	t.Logf("exit code %d:\n%s", code, lastLines(out, 3))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestDiskFullFailStop runs the server with its event store on a 16 MiB tmpfs, fills
// the tmpfs, and submits: the API answers unavailable, the server exits non-zero
// naming the store and the error, and after the store is moved to a disk with room,
// every acknowledged execution is there. It needs root (mount); it skips otherwise.
func TestDiskFullFailStop(t *testing.T) {
	t.Parallel()
	var storeDir string
	mounted := false
	s := harness.Start(t, harness.Options{Prepare: func(dir string) {
		storeDir = dir
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", dir).CombinedOutput(); err != nil {
			t.Skipf("cannot mount a tmpfs (needs root): %v %s", err, out)
		}
		mounted = true
		t.Cleanup(func() {
			if mounted {
				_ = exec.Command("umount", dir).Run()
			}
		})
	}})
	// The harness's process is replaced by one whose exit status the test sees.
	s.Kill()
	_, output, exited := serverProcess(t, configOf(storeDir))
	waitUntil(t, 2*time.Minute, func() bool {
		_, err := s.Comp.ListComponents(context.Background(), connect.NewRequest(&pb.ListComponentsRequest{}))
		return err == nil
	})

	var acked []string
	for range 20 {
		acked = append(acked, s.Submit("testing:fibo/fibo.fibo", "[10]"))
	}
	for _, id := range acked {
		harness.JSONEq(t, s.Result(id, 2*time.Minute), `{"ok":55}`)
	}
	fill(t, filepath.Join(storeDir, "filler"))

	var unavailable error
	for i := 0; i < 10000 && unavailable == nil; i++ {
		resp, err := s.Exec.Submit(context.Background(), connect.NewRequest(&pb.SubmitRequest{Ffqn: "testing:fibo/fibo.fibo", ParamsJson: "[10]"}))
		switch {
		case err == nil:
			acked = append(acked, resp.Msg.ExecutionId)
		case connect.CodeOf(err) == connect.CodeUnavailable:
			unavailable = err
		case strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "connection refused"):
			// Another commit (an activity's outcome) hit the full disk first and the
			// server is stopping: a request in flight then loses its connection. The
			// exit status below is what tells that the failure was handled.
			unavailable = err
		default:
			t.Fatalf("submit on a full disk: %v, want unavailable\n%s", err, output())
		}
	}
	if unavailable == nil {
		t.Fatalf("10000 submits on a full disk were all acknowledged")
	}
	t.Logf("submit on a full disk: %v (%d acknowledged)", unavailable, len(acked))
	code := waitExit(t, exited, output)
	out := output()
	if code == 0 || !strings.Contains(out, storeDir) || !strings.Contains(out, "no space left on device") {
		t.Fatalf("exit code %d, want non-zero with a message naming %s and the error:\n%s", code, storeDir, out)
	}
	t.Logf("exit code %d:\n%s", code, lastLines(out, 2))

	// Move the store to a disk with room: the directory under the mount point.
	saved := filepath.Join(t.TempDir(), "store")
	if out, err := exec.Command("cp", "-a", storeDir, saved).CombinedOutput(); err != nil {
		t.Fatalf("copy the store: %v %s", err, out)
	}
	if out, err := exec.Command("umount", storeDir).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v %s", err, out)
	}
	mounted = false
	if err := os.Remove(filepath.Join(saved, "filler")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(storeDir); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", saved, storeDir).CombinedOutput(); err != nil {
		t.Fatalf("copy the store back: %v %s", err, out)
	}
	s.Start()
	for _, id := range acked {
		harness.JSONEq(t, s.Result(id, 2*time.Minute), `{"ok":55}`)
	}
}

// fill writes path until its file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := bytes.Repeat([]byte{0xa5}, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", path, err)
			}
			break
		}
	}
	// What a 64 KiB write could not take, smaller ones can.
	for _, err := f.Write(buf[:512]); err == nil; _, err = f.Write(buf[:512]) {
	}
}
