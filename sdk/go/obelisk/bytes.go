package obelisk

import (
	"encoding/json"
	"reflect"
	"strconv"
)

var bytesType = reflect.TypeFor[Bytes]()

// Bytes is a WIT list<u8>. encoding/json encodes a []byte as a base64
// string; Bytes encodes as the JSON array of numbers the ABI expects, and
// decodes from one.
type Bytes []byte

// MarshalJSON encodes b as a JSON array of numbers, or null for a nil b.
func (b Bytes) MarshalJSON() ([]byte, error) {
	if b == nil {
		return []byte("null"), nil
	}
	out := make([]byte, 0, 2+4*len(b))
	out = append(out, '[')
	for i, c := range b {
		if i > 0 {
			out = append(out, ',')
		}
		out = strconv.AppendUint(out, uint64(c), 10)
	}
	return append(out, ']'), nil
}

// UnmarshalJSON decodes a JSON array of numbers from 0 to 255.
func (b *Bytes) UnmarshalJSON(data []byte) error {
	var v []uint8
	// A []uint8 decodes from an array; only a string would be read as base64.
	if len(data) > 0 && data[0] == '"' {
		return &json.UnmarshalTypeError{Value: "string", Type: bytesType}
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*b = v
	return nil
}
