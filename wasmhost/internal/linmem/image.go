package linmem

import "errors"

// Chunk is a part of an image: Data at Offset.
type Chunk struct {
	Offset uint64
	Data   []byte
}

// ErrNoImages is returned by NewImage where images are not supported.
var ErrNoImages = errors.New("linmem: memory images are not supported on this platform")
