package wit

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// tokenKind is the kind of a lexical token of WIT text.
type tokenKind uint8

const (
	tokEOF tokenKind = iota
	tokIdent
	tokNumber // starts with a digit: an integer or a semantic version
	tokLBrace
	tokRBrace
	tokLParen
	tokRParen
	tokLAngle
	tokRAngle
	tokComma
	tokSemi
	tokColon
	tokEquals
	tokDot
	tokSlash
	tokAt
	tokArrow
	tokUnderscore
	tokStar
)

func (k tokenKind) String() string {
	switch k {
	case tokEOF:
		return "end of file"
	case tokIdent:
		return "identifier"
	case tokNumber:
		return "number"
	case tokLBrace:
		return "'{'"
	case tokRBrace:
		return "'}'"
	case tokLParen:
		return "'('"
	case tokRParen:
		return "')'"
	case tokLAngle:
		return "'<'"
	case tokRAngle:
		return "'>'"
	case tokComma:
		return "','"
	case tokSemi:
		return "';'"
	case tokColon:
		return "':'"
	case tokEquals:
		return "'='"
	case tokDot:
		return "'.'"
	case tokSlash:
		return "'/'"
	case tokAt:
		return "'@'"
	case tokArrow:
		return "'->'"
	case tokUnderscore:
		return "'_'"
	case tokStar:
		return "'*'"
	}
	return fmt.Sprintf("token(%d)", k)
}

// position is a 1-based line and column (counted in characters) in a file.
type position struct {
	line, col int
}

type token struct {
	kind    tokenKind
	text    string // identifier (without a leading '%'), number or punctuation
	escaped bool   // identifier written with a leading '%'
	pos     position
}

// describe renders a token for "found ..." in error messages.
func (t token) describe() string {
	switch t.kind {
	case tokIdent:
		if t.escaped {
			return fmt.Sprintf("identifier `%%%s`", t.text)
		}
		return fmt.Sprintf("`%s`", t.text)
	case tokNumber:
		return fmt.Sprintf("number `%s`", t.text)
	default:
		return t.kind.String()
	}
}

// is reports whether t is the unescaped keyword kw.
func (t token) is(kw string) bool {
	return t.kind == tokIdent && !t.escaped && t.text == kw
}

type lexer struct {
	src  string
	off  int
	line int
	col  int
}

// tokenize splits WIT source text into tokens, dropping whitespace and comments
// (including `///` and `/** */` doc comments). The last token is always tokEOF.
func tokenize(src string) ([]token, error) {
	l := &lexer{src: strings.TrimPrefix(src, "\uFEFF"), line: 1, col: 1}
	var toks []token
	for {
		t, err := l.next()
		if err != nil {
			return nil, err
		}
		toks = append(toks, t)
		if t.kind == tokEOF {
			return toks, nil
		}
	}
}

type lexError struct {
	pos position
	msg string
}

func (e *lexError) Error() string { return e.msg }

func (l *lexer) errorf(p position, format string, args ...any) error {
	return &lexError{pos: p, msg: fmt.Sprintf(format, args...)}
}

func (l *lexer) peekByte(n int) byte {
	if l.off+n < len(l.src) {
		return l.src[l.off+n]
	}
	return 0
}

// advance consumes one character and keeps the line and column up to date.
func (l *lexer) advance() {
	r, size := utf8.DecodeRuneInString(l.src[l.off:])
	l.off += size
	if r == '\n' {
		l.line++
		l.col = 1
	} else {
		l.col++
	}
}

func (l *lexer) pos() position { return position{l.line, l.col} }

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isAlnum(c byte) bool  { return isDigit(c) || isLetter(c) }

func (l *lexer) skipSpaceAndComments() error {
	for l.off < len(l.src) {
		c := l.src[l.off]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			l.advance()
		case c == '/' && l.peekByte(1) == '/':
			for l.off < len(l.src) && l.src[l.off] != '\n' {
				l.advance()
			}
		case c == '/' && l.peekByte(1) == '*':
			start := l.pos()
			l.advance()
			l.advance()
			depth := 1
			for depth > 0 {
				if l.off >= len(l.src) {
					return l.errorf(start, "unterminated block comment")
				}
				switch {
				case l.src[l.off] == '/' && l.peekByte(1) == '*':
					depth++
					l.advance()
					l.advance()
				case l.src[l.off] == '*' && l.peekByte(1) == '/':
					depth--
					l.advance()
					l.advance()
				default:
					l.advance()
				}
			}
		default:
			return nil
		}
	}
	return nil
}

func (l *lexer) next() (token, error) {
	if err := l.skipSpaceAndComments(); err != nil {
		return token{}, err
	}
	p := l.pos()
	if l.off >= len(l.src) {
		return token{kind: tokEOF, pos: p}, nil
	}
	c := l.src[l.off]
	punct := func(k tokenKind, n int) (token, error) {
		text := l.src[l.off : l.off+n]
		for range n {
			l.advance()
		}
		return token{kind: k, text: text, pos: p}, nil
	}
	switch c {
	case '{':
		return punct(tokLBrace, 1)
	case '}':
		return punct(tokRBrace, 1)
	case '(':
		return punct(tokLParen, 1)
	case ')':
		return punct(tokRParen, 1)
	case '<':
		return punct(tokLAngle, 1)
	case '>':
		return punct(tokRAngle, 1)
	case ',':
		return punct(tokComma, 1)
	case ';':
		return punct(tokSemi, 1)
	case ':':
		return punct(tokColon, 1)
	case '=':
		return punct(tokEquals, 1)
	case '.':
		return punct(tokDot, 1)
	case '/':
		return punct(tokSlash, 1)
	case '@':
		return punct(tokAt, 1)
	case '*':
		return punct(tokStar, 1)
	case '-':
		if l.peekByte(1) == '>' {
			return punct(tokArrow, 2)
		}
		return token{}, l.errorf(p, "unexpected character '-'")
	case '_':
		if !isAlnum(l.peekByte(1)) && l.peekByte(1) != '_' && l.peekByte(1) != '-' {
			return punct(tokUnderscore, 1)
		}
		return token{}, l.errorf(p, "identifiers must start with a letter")
	case '%':
		l.advance()
		if l.off >= len(l.src) || !isLetter(l.src[l.off]) {
			return token{}, l.errorf(p, "'%%' must be followed by an identifier")
		}
		t, err := l.ident(p)
		t.escaped = true
		return t, err
	}
	switch {
	case isLetter(c):
		return l.ident(p)
	case isDigit(c):
		return l.number(p), nil
	}
	r, _ := utf8.DecodeRuneInString(l.src[l.off:])
	if r == utf8.RuneError {
		return token{}, l.errorf(p, "invalid UTF-8")
	}
	return token{}, l.errorf(p, "unexpected character %q", r)
}

// ident scans an identifier starting at a letter and checks it is kebab-case.
func (l *lexer) ident(p position) (token, error) {
	start := l.off
	for l.off < len(l.src) {
		c := l.src[l.off]
		if isAlnum(c) || c == '_' || (c == '-' && l.peekByte(1) != '>') {
			l.advance()
			continue
		}
		break
	}
	text := l.src[start:l.off]
	if msg := checkKebab(text); msg != "" {
		return token{}, l.errorf(p, "invalid identifier `%s`: %s", text, msg)
	}
	return token{kind: tokIdent, text: text, pos: p}, nil
}

// checkKebab validates a kebab-case identifier: words separated by single
// dashes, the first starting with a letter, each word all lower case or all
// upper case (digits allowed). It returns "" when the identifier is valid.
func checkKebab(s string) string {
	if s == "" {
		return "empty identifier"
	}
	if strings.Contains(s, "_") {
		return fmt.Sprintf("WIT identifiers are kebab-case (use `%s`)", strings.ReplaceAll(s, "_", "-"))
	}
	for i, w := range strings.Split(s, "-") {
		if w == "" {
			return "empty word between dashes"
		}
		if i == 0 && !isLetter(w[0]) {
			return "must start with a letter"
		}
		var lower, upper bool
		for j := 0; j < len(w); j++ {
			switch c := w[j]; {
			case c >= 'a' && c <= 'z':
				lower = true
			case c >= 'A' && c <= 'Z':
				upper = true
			case isDigit(c):
			default:
				return fmt.Sprintf("unexpected character %q", c)
			}
		}
		if lower && upper {
			return fmt.Sprintf("word %q mixes upper and lower case", w)
		}
	}
	return ""
}

// number scans an integer or a semantic version (1.2.3-pre.1+build.5).
func (l *lexer) number(p position) token {
	start := l.off
	digits := func() {
		for l.off < len(l.src) && isDigit(l.src[l.off]) {
			l.advance()
		}
	}
	digits()
	for l.peekByte(0) == '.' && isDigit(l.peekByte(1)) {
		l.advance()
		digits()
	}
	// dotted identifiers of a pre-release or build suffix
	suffix := func() {
		for {
			for l.off < len(l.src) && (isAlnum(l.src[l.off]) || l.src[l.off] == '-') {
				l.advance()
			}
			next := l.peekByte(1)
			if l.peekByte(0) == '.' && (isAlnum(next) || next == '-') {
				l.advance()
				continue
			}
			return
		}
	}
	if l.peekByte(0) == '-' && isAlnum(l.peekByte(1)) {
		l.advance()
		suffix()
	}
	if l.peekByte(0) == '+' && (isAlnum(l.peekByte(1)) || l.peekByte(1) == '-') {
		l.advance()
		suffix()
	}
	return token{kind: tokNumber, text: l.src[start:l.off], pos: p}
}

// validSemver reports whether s is a semantic version MAJOR.MINOR.PATCH with an
// optional -pre-release and +build suffix (https://semver.org).
func validSemver(s string) bool {
	core, build, hasBuild := strings.Cut(s, "+")
	if hasBuild && !validDotted(build, false) {
		return false
	}
	core, pre, hasPre := strings.Cut(core, "-")
	if hasPre && !validDotted(pre, true) {
		return false
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if !validNumeric(p) {
			return false
		}
	}
	return true
}

func validNumeric(p string) bool {
	if p == "" || (len(p) > 1 && p[0] == '0') {
		return false
	}
	for i := 0; i < len(p); i++ {
		if !isDigit(p[i]) {
			return false
		}
	}
	return true
}

func validDotted(s string, noLeadingZeros bool) bool {
	for _, id := range strings.Split(s, ".") {
		if id == "" {
			return false
		}
		numeric := true
		for i := 0; i < len(id); i++ {
			c := id[i]
			if !isAlnum(c) && c != '-' {
				return false
			}
			if !isDigit(c) {
				numeric = false
			}
		}
		if numeric && noLeadingZeros && !validNumeric(id) {
			return false
		}
	}
	return true
}
