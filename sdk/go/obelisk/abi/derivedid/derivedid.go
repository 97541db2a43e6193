// Package derivedid derives top-level execution IDs from content, so that whoever
// submits the same thing twice (a restarted trigger, a schedule firing again after a
// crash) names the same execution and the second submission finds the first.
//
// It is shared by guests (obelisktrigger.DerivedID) and the host (the scheduler), and
// kept apart from package abi so that guests which do not derive IDs do not link
// crypto/sha256. It imports only the standard library and compiles for wasip1.
package derivedid

import (
	"crypto/sha256"
	"fmt"
	"strings"
)

// ExecutionID returns a top-level execution ID, E_<ULID>, that depends only on parts:
// the same parts give the same ID. Its ULID is the first 128 bits of the SHA-256 of
// the parts (each preceded by its length, so that ("ab", "c") and ("a", "bc") differ);
// its time part is therefore no creation time.
func ExecutionID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:", len(p))
		h.Write([]byte(p))
	}
	sum := h.Sum(nil)
	const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	var b strings.Builder
	b.WriteString("E_")
	// 26 base32 digits hold 130 bits: two zero bits, then the 128 of sum[:16].
	var acc uint64
	bits := 2 // the two leading zero bits
	for _, c := range sum[:16] {
		acc = acc<<8 | uint64(c)
		bits += 8
		for bits >= 5 {
			bits -= 5
			b.WriteByte(crockford[(acc>>bits)&31])
		}
	}
	return b.String()
}
