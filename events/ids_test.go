package events_test

import (
	"strings"
	"testing"
	"time"

	"github.com/obelisk-go/obelisk/events"
)

func TestCanonicalID(t *testing.T) {
	const upper = "01M95GYSWGB1NGVQYPFF0A1AAA"
	lower := strings.ToLower(upper)
	tests := []struct {
		in, want, err string
	}{
		{"E_" + upper, "E_" + upper, ""},
		{"E_" + lower, "E_" + upper, ""},
		{"E_01m95GYSwgb1NGVQYPFF0A1aaa", "E_" + upper, ""},
		{"E_" + lower + ".g:1_2.o:1-fibo_1", "E_" + upper + ".g:1_2.o:1-fibo_1", ""}, // join set names keep their case
		{"Delay_" + lower + ".g:1_1", "Delay_" + upper + ".g:1_1", ""},
		{"e_" + upper, "", `must start with "E_"`},
		{"E_" + upper[:25], "", "want E_<ULID>"},
		{"E_" + upper + "x", "", "want E_<ULID>"},
		{"E_" + strings.Repeat("x", 5<<20), "", "…(5242882 bytes)"},
		{"", "", `must start with "E_"`},
	}
	for _, tt := range tests {
		got, err := events.CanonicalID(tt.in)
		switch {
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("CanonicalID(%.40s) = %q, %v; want %q", tt.in, got, err, tt.want)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err) || len(err.Error()) > 300):
			t.Errorf("CanonicalID(%.40s) = %q, %.300v; want an error with %q", tt.in, got, err, tt.err)
		}
	}
	if got, err := events.CanonicalTopLevelID("E_" + lower); err != nil || got != "E_"+upper {
		t.Errorf("CanonicalTopLevelID(lower case) = %q, %v", got, err)
	}
	if _, err := events.CanonicalTopLevelID("E_" + upper + ".g:1_1"); err == nil {
		t.Error("CanonicalTopLevelID accepted a child's ID")
	}
	if got := events.CanonicalIDPrefix("E_01m9"); got != "E_01M9" {
		t.Errorf("CanonicalIDPrefix(E_01m9) = %q", got)
	}
	if got := events.CanonicalIDPrefix("E_" + lower + ".g:"); got != "E_"+upper+".g:" {
		t.Errorf("CanonicalIDPrefix(a child's prefix) = %q", got)
	}
}

func TestRunIDTime(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_123)
	if got, ok := events.RunIDTime(events.NewRunID(now)); !ok || !got.Equal(now) {
		t.Fatalf("RunIDTime(NewRunID(%v)) = %v, %v", now, got, ok)
	}
	for _, bad := range []string{"", "Run_", "Exr_01JAAAAAAAAAAAAAAAAAAAAAAA", "Run_not-a-ulid"} {
		if _, ok := events.RunIDTime(bad); ok {
			t.Errorf("RunIDTime(%q) ok", bad)
		}
	}
}
