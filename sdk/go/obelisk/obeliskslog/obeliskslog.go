// Package obeliskslog gives Obelisk components a log/slog logger that sends
// its records to the execution's log through [obelisk.Context.Log], that is
// through the wasi:logging import.
//
// It is a package of its own so that components that do not use log/slog do
// not link it.
package obeliskslog

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"unicode"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk"
)

// Logger returns a structured logger that sends its records through
// [obelisk.Context.Log]: the message followed by the attributes as key=value
// pairs. slog levels below Debug are logged as trace, levels from Error+4 on as
// critical.
func Logger(ctx obelisk.Context) *slog.Logger {
	return slog.New(&logHandler{ctx: ctx})
}

// logHandler is the slog.Handler behind Logger.
type logHandler struct {
	ctx   obelisk.Context
	attrs string // the attributes of WithAttrs, formatted
	group string // the prefix of attribute keys, from WithGroup
}

func (h *logHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	b.WriteString(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		appendAttr(&b, h.group, a)
		return true
	})
	h.ctx.Log(levelOf(r.Level), b.String())
	return nil
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var b strings.Builder
	for _, a := range attrs {
		appendAttr(&b, h.group, a)
	}
	return &logHandler{ctx: h.ctx, attrs: h.attrs + b.String(), group: h.group}
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &logHandler{ctx: h.ctx, attrs: h.attrs, group: h.group + name + "."}
}

// levelOf maps a slog level to a log op level.
func levelOf(l slog.Level) obelisk.Level {
	switch {
	case l < slog.LevelDebug:
		return obelisk.LevelTrace
	case l < slog.LevelInfo:
		return obelisk.LevelDebug
	case l < slog.LevelWarn:
		return obelisk.LevelInfo
	case l < slog.LevelError:
		return obelisk.LevelWarn
	case l < slog.LevelError+4:
		return obelisk.LevelError
	default:
		return obelisk.LevelCritical
	}
}

// appendAttr appends " key=value" for a, or one such pair for every member
// of a group, with group names joined by dots.
func appendAttr(b *strings.Builder, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			prefix += a.Key + "."
		}
		for _, ga := range a.Value.Group() {
			appendAttr(b, prefix, ga)
		}
		return
	}
	b.WriteByte(' ')
	b.WriteString(quoteIfNeeded(prefix + a.Key))
	b.WriteByte('=')
	b.WriteString(quoteIfNeeded(a.Value.String()))
}

// quoteIfNeeded quotes s if it is empty or contains spaces, quotes, '=' or
// non-printable characters.
func quoteIfNeeded(s string) string {
	if s == "" {
		return `""`
	}
	for _, r := range s {
		if r == '"' || r == '=' || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
