package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/obelisk-go/obelisk/wasmhost/wit/gogen"
)

func TestGenerateGoBindings(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "fibo.wit"), genFiboWIT)

	// to the standard output, one interface
	out, err := runCLI(t, "generate", "go-bindings", dir, "--package", "fibo", "testing:fibo/fibo")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{gogen.Header + "\n", "package fibo\n",
		`const FFQNFibo = "testing:fibo/fibo@1.0.0.fibo"`,
		"func Fibo(ctx obelisk.Context, n uint8) (uint64, error) {",
		"func FiboStats(ctx obelisk.Context, n uint8) (Stats, error) {",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "Ping") {
		t.Errorf("interface extra generated:\n%s", out)
	}

	// to a file, all interfaces
	file := filepath.Join(t.TempDir(), "fibo.go")
	out, err = runCLI(t, "generate", "go-bindings", dir, "--package", "fibo", "--out", file)
	if err != nil {
		t.Fatal(err)
	}
	if out != file+"\n" {
		t.Errorf("output %q, want %q", out, file+"\n")
	}
	src, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"func FiboFibo(", "func ExtraPing(ctx obelisk.Context) error {"} {
		if !strings.Contains(string(src), want) {
			t.Errorf("missing %q in\n%s", want, src)
		}
	}
}

func TestGenerateGoBindingsErrors(t *testing.T) {
	good := t.TempDir()
	writeFile(t, filepath.Join(good, "fibo.wit"), genFiboWIT)
	bad := t.TempDir()
	writeFile(t, filepath.Join(bad, "fibo.wit"), "package testing:fibo;\ninterface fibo {\n  fibo: func(n: u8) -> result<u64>\n}\n")
	for _, tc := range []struct {
		name  string
		args  []string
		want  string
		plain bool // cobra's own argument error, which main exits 2 for
	}{
		{"unknown interface", []string{good, "--package", "p", "testing:fibo/nope"}, `interface "testing:fibo/nope" is not exported`, false},
		{"bad package", []string{good, "--package", "a-b"}, `"a-b" is not a valid Go package name`, false},
		{"unparseable", []string{bad, "--package", "p"}, "WIT in " + bad + ": fibo.wit:4:1:", false},
		{"no WIT", []string{t.TempDir(), "--package", "p"}, "no .wit files found", false},
		{"no dir", []string{filepath.Join(good, "nope"), "--package", "p"}, "nope", false},
		{"no package", []string{good}, `"package" not set`, true},
		{"no args", []string{"--package", "p"}, "requires at least 1 arg", true},
	} {
		out := filepath.Join(t.TempDir(), "out.go")
		_, err := runCLI(t, append([]string{"generate", "go-bindings", "--out", out}, tc.args...)...)
		var exit *ExitError
		if err == nil || !tc.plain && (!errors.As(err, &exit) || exit.Code != 2) {
			t.Errorf("%s: error %#v, want exit status 2", tc.name, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q, want it to contain %q", tc.name, err, tc.want)
		}
		if _, statErr := os.Stat(out); !os.IsNotExist(statErr) {
			t.Errorf("%s: wrote %s", tc.name, out)
		}
	}
}
