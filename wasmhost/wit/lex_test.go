package wit

import (
	"strings"
	"testing"
)

func TestTokenize(t *testing.T) {
	tests := []struct {
		src  string
		want string // tokens as kind:text, space separated
	}{
		{"package a:b@1.2.3;", "package a : b @ 1.2.3 ; EOF"},
		{"use a:b/c@1.0.0-rc.1.{x};", "use a : b / c @ 1.0.0-rc.1 . { x } ; EOF"},
		{"use a:b/c@1.0.0+build.7.{x}", "use a : b / c @ 1.0.0+build.7 . { x } EOF"},
		{"f: func()->result<_,u8>;", "f : func ( ) -> result < _ , u8 > ; EOF"},
		{"%type %interface-x", "%type %interface-x EOF"},
		{"list<u8, 16>", "list < u8 , 16 > EOF"},
		{"a // comment\n/// doc\nb /* x /* nested */ y */ c /** doc */", "a b c EOF"},
		{"@since(version = 0.2.0)", "@ since ( version = 0.2.0 ) EOF"},
		{"sleep-activity HTTP-get2 a1-2b", "sleep-activity HTTP-get2 a1-2b EOF"},
		{"", "EOF"},
	}
	for _, tt := range tests {
		toks, err := tokenize(tt.src)
		if err != nil {
			t.Errorf("tokenize(%q): %v", tt.src, err)
			continue
		}
		var got []string
		for _, tok := range toks {
			switch {
			case tok.kind == tokEOF:
				got = append(got, "EOF")
			case tok.escaped:
				got = append(got, "%"+tok.text)
			default:
				got = append(got, tok.text)
			}
		}
		if s := strings.Join(got, " "); s != tt.want {
			t.Errorf("tokenize(%q) = %s, want %s", tt.src, s, tt.want)
		}
	}
}

func TestTokenPositions(t *testing.T) {
	toks, err := tokenize("a\n  /*é*/b c\r\n\td")
	if err != nil {
		t.Fatal(err)
	}
	want := []position{{1, 1}, {2, 8}, {2, 10}, {3, 2}}
	for i, w := range want {
		if toks[i].pos != w {
			t.Errorf("token %d %q at %v, want %v", i, toks[i].text, toks[i].pos, w)
		}
	}
}

func TestCheckKebab(t *testing.T) {
	tests := []struct {
		id, err string
	}{
		{"a", ""}, {"sleep-activity", ""}, {"permanent-failure", ""}, {"HTTP-error", ""}, {"a1-2b", ""}, {"u8", ""},
		{"a_b", "WIT identifiers are kebab-case (use `a-b`)"},
		{"a--b", "empty word between dashes"},
		{"a-", "empty word between dashes"},
		{"fooBar", `word "fooBar" mixes upper and lower case`},
		{"1a", "must start with a letter"},
		{"", "empty identifier"},
	}
	for _, tt := range tests {
		if got := checkKebab(tt.id); got != tt.err {
			t.Errorf("checkKebab(%q) = %q, want %q", tt.id, got, tt.err)
		}
	}
}

func TestValidSemver(t *testing.T) {
	tests := []struct {
		v  string
		ok bool
	}{
		{"0.1.0", true}, {"1.2.3", true}, {"10.20.30", true}, {"1.0.0-rc.1", true}, {"1.0.0-alpha-1", true},
		{"1.0.0+build.5", true}, {"1.0.0-rc.1+build.5", true}, {"0.2.0-2024-01-01", true},
		{"1.0", false}, {"1", false}, {"01.0.0", false}, {"1.0.0-", false}, {"1.0.0-01", false},
		{"1.0.0+", false}, {"1.0.0-a..b", false}, {"1.0.0.0", false}, {"a.b.c", false},
	}
	for _, tt := range tests {
		if got := validSemver(tt.v); got != tt.ok {
			t.Errorf("validSemver(%q) = %v, want %v", tt.v, got, tt.ok)
		}
	}
}

func TestSnakeCase(t *testing.T) {
	for in, want := range map[string]string{"field-2": "field_2", "permanent-failure": "permanent_failure", "a": "a", "HTTP-error": "HTTP_error"} {
		if got := SnakeCase(in); got != want {
			t.Errorf("SnakeCase(%q) = %q, want %q", in, got, want)
		}
	}
}
