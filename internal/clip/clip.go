// Package clip shortens user input quoted in error messages: an error about a 5 MB
// execution ID must not be 5 MB itself.
package clip

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Max is how many bytes of a value an error message keeps.
const Max = 100

// String returns s unchanged when it is at most Max bytes long, otherwise its first
// Max bytes (cut at a character boundary) followed by "…(N bytes)", N being the length
// of all of s.
func String(s string) string { return To(s, Max) }

// To is String with a bound of max bytes instead of Max.
func To(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:cutAt(s, max)], len(s))
}

// Quote is String for values an error quotes: s quoted as with %q, or, when s is longer
// than Max bytes, its first Max bytes quoted followed by "…(N bytes)".
func Quote(s string) string {
	if len(s) <= Max {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%s…(%d bytes)", strconv.Quote(s[:cutAt(s, Max)]), len(s))
}

// cutAt returns where to cut s (longer than max): at most max bytes, not inside a
// UTF-8 sequence.
func cutAt(s string, max int) int {
	n := max
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return n
}
