//go:build !linux

package linmem

import "github.com/tetratelabs/wazero/experimental"

// Supported reports whether this platform has the mmap allocator.
const Supported = false

// Allocator returns nil: wazero's default Go-heap memory is used.
func Allocator() experimental.MemoryAllocator { return nil }

// Populate does nothing here: the memory is faulted in by the writes.
func Populate([]byte) {}
