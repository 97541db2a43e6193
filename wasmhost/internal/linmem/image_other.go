//go:build !linux

package linmem

import "github.com/tetratelabs/wazero/experimental"

// Image is not supported on this platform: NewImage fails.
type Image struct{}

// NewImage returns ErrNoImages.
func NewImage(size uint64, chunks []Chunk) (*Image, error) { return nil, ErrNoImages }

// Size returns 0.
func (img *Image) Size() uint64 { return 0 }

// Close does nothing.
func (img *Image) Close() error { return nil }

// Allocator returns nil.
func (img *Image) Allocator() experimental.MemoryAllocator { return nil }

// Reset reports false: there are no images on this platform.
func (img *Image) Reset(mem experimental.LinearMemory) bool { return false }
