package wasmhost

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"

	"github.com/tetratelabs/wazero/api"
)

// Activity instances from the snapshot.
//
// An activity instance must not share random state with other instances, and the Go
// runtime draws its random state once, in _initialize: the 32 bytes of random_get it
// reads there seed a ChaCha8 generator (runtime.globalRand) from which every M's
// generator (m.chacha8: what math/rand, math/rand/v2, map iteration and select draw
// from) is seeded in turn. An instance restored from the workflow snapshot would draw
// the snapshot's stream, the same in every instance.
//
// So the snapshot is initialised a third time with other random bytes, and the words
// in which the two memories differ are compared. A generator's state
// (internal/chacha8rand.State: buf [32]uint64, seed [4]uint64, i, n, c uint32) shows
// as a run of exactly 36 differing words (buf and seed are random) followed by counters
// that are equal and consistent (i <= n, n is 28 or 32, c a multiple of 4 below 16).
// Every such run is a generator; restoring an activity instance overwrites its buf and
// seed with fresh random bytes, which is a valid state of a generator seeded at random:
// the next values come from buf, the next block from seed.
//
// The other differences (a map's hash seed and the layout of the maps made during
// _initialize, the runtime's cheap per-M generator) stay as the snapshot has them: a
// map's layout must match its seed, and they decide nothing an activity's caller can
// observe but iteration order, which the reseeded generators randomise per iteration.
// A module whose third initialisation differs in anything else (size, globals, what it
// wrote to stderr) gets no activity snapshot.

const (
	chachaWords     = 36 // buf and seed
	chachaStateSize = chachaWords*8 + 12
)

// findGenerators returns the offsets of the ChaCha8 generator states in a, comparing
// it with b, a memory initialised the same way with other random bytes.
func findGenerators(a, b []byte) ([]uint32, error) {
	if len(a) != len(b) {
		return nil, fmt.Errorf("memory sizes differ (%d and %d bytes)", len(a), len(b))
	}
	var found []uint32
	words := len(a) / 8
	for w := 0; w < words; {
		if binary.LittleEndian.Uint64(a[w*8:]) == binary.LittleEndian.Uint64(b[w*8:]) {
			w++
			continue
		}
		start := w
		for w < words && binary.LittleEndian.Uint64(a[w*8:]) != binary.LittleEndian.Uint64(b[w*8:]) {
			w++
		}
		if w-start != chachaWords {
			continue
		}
		off := start * 8
		tail := off + chachaWords*8
		if tail+12 > len(a) {
			continue
		}
		i, n, c := binary.LittleEndian.Uint32(a[tail:]), binary.LittleEndian.Uint32(a[tail+4:]), binary.LittleEndian.Uint32(a[tail+8:])
		sameCounters := string(a[tail:tail+12]) == string(b[tail:tail+12])
		if sameCounters && (n == 32 || n == 28) && i <= n && c%4 == 0 && c < 16 {
			found = append(found, uint32(off))
		}
	}
	return found, nil
}

// reseedGenerators gives the generators at offsets fresh random state.
func reseedGenerators(mem api.Memory, offsets []uint32) error {
	var fresh [chachaWords * 8]byte
	for _, off := range offsets {
		if _, err := rand.Read(fresh[:]); err != nil {
			return err
		}
		if !mem.Write(off, fresh[:]) {
			return fmt.Errorf("generator at %#x is outside memory", off)
		}
	}
	return nil
}
