package clip

import (
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	long := strings.Repeat("a", 5<<20)
	tests := []struct {
		in, quote, str string
	}{
		{"", `""`, ""},
		{"E_01ABC", `"E_01ABC"`, "E_01ABC"},
		{strings.Repeat("x", Max), `"` + strings.Repeat("x", Max) + `"`, strings.Repeat("x", Max)},
		{long, `"` + strings.Repeat("a", Max) + `"…(5242880 bytes)`, strings.Repeat("a", Max) + "…(5242880 bytes)"},
		// 99 bytes of 'a' then 'é' (2 bytes): the cut does not split the character.
		{strings.Repeat("a", Max-1) + "éé", `"` + strings.Repeat("a", Max-1) + `"…(103 bytes)`, strings.Repeat("a", Max-1) + "…(103 bytes)"},
		{"tab\there", `"tab\there"`, "tab\there"},
	}
	for _, tt := range tests {
		if got := Quote(tt.in); got != tt.quote {
			t.Errorf("Quote(%.20q...) = %.200s, want %.200s", tt.in, got, tt.quote)
		}
		if got := String(tt.in); got != tt.str {
			t.Errorf("String(%.20q...) = %.200s, want %.200s", tt.in, got, tt.str)
		}
	}
}

func TestTo(t *testing.T) {
	if got := To("héllo", 2); got != "h…(6 bytes)" {
		t.Errorf("To = %q", got)
	}
	if got := To("hello", 5); got != "hello" {
		t.Errorf("To = %q", got)
	}
}
