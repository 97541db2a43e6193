package obeliskslog_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
	"github.com/obelisk-go/obelisk/sdk/go/obelisk/obeliskslog"
)

func init() {
	obelisk.Export("test:obeliskslog/fns.log", func(ctx obelisk.Context) error {
		l := obeliskslog.Logger(ctx)
		l.Info("hello", "n", 1, "s", "two words", slog.Group("g", "a", true))
		l.With("k", "v").WithGroup("grp").Error("bad", "x", "", "q", `a"b`, "eq", "a=b")
		l.WithGroup("").Warn("warned", slog.Group("", "inline", 1))
		l.Log(context.Background(), slog.LevelDebug-1, "fine")
		l.Debug("dbg", slog.Attr{})
		l.Log(context.Background(), slog.LevelError+4, "fatal")
		return nil
	})
}

func TestLogger(t *testing.T) {
	var logs []string
	host := &obelisk.TestHost{Log: func(level obelisk.Level, msg string) { logs = append(logs, string(level)+" "+msg) }}
	host.Run("test:obeliskslog/fns.log")
	want := []string{
		`info hello n=1 s="two words" g.a=true`,
		`error bad k=v grp.x="" grp.q="a\"b" grp.eq="a=b"`,
		`warn warned inline=1`,
		"trace fine",
		"debug dbg",
		"critical fatal",
	}
	if strings.Join(logs, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(logs, "\n"), strings.Join(want, "\n"))
	}
}
