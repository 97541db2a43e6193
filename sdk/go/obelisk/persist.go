package obelisk

import (
	"fmt"
	"strconv"

	"github.com/obelisk-go/obelisk/sdk/go/obelisk/abi"
)

// Deterministic helpers for workflows. A workflow must not read a real clock or a real
// random source (its WASI ones are deterministic: the same on every replay); these make
// a value once, at random, record it in the execution's history, and return the recorded
// value on every replay.

// RandomU64 returns a random number in [min, maxExclusive), the same on every replay.
func RandomU64(ctx Context, min, maxExclusive uint64) (uint64, error) {
	// Built by hand: a replay makes this call once per recorded value, and
	// encoding/json's reflection is most of its cost in a wasm guest.
	req := make([]byte, 0, 72)
	req = append(req, `{"op":"`+abi.OpRandomU64+`","min":`...)
	req = strconv.AppendUint(req, min, 10)
	req = append(req, `,"max_exclusive":`...)
	req = strconv.AppendUint(req, maxExclusive, 10)
	req = append(req, '}')
	raw, err := send(ctx.host(), abi.OpRandomU64, req)
	if err != nil {
		return 0, err
	}
	// The host answers a bare integer: parse it without decode's reflection.
	if v, err := strconv.ParseUint(string(raw), 10, 64); err == nil {
		return v, nil
	}
	var v uint64
	if err := decode(raw, &v); err != nil {
		return 0, fmt.Errorf("obelisk: random_u64: decoding the response %s: %w", raw, err)
	}
	return v, nil
}

// RandomString returns a random alphanumeric string whose length is in
// [minLength, maxLengthExclusive), the same on every replay.
func RandomString(ctx Context, minLength, maxLengthExclusive uint32) (string, error) {
	var v string
	err := ctx.HostCall(abi.OpRandomString, abi.RandomStringRequest{MinLength: minLength, MaxLengthExclusive: maxLengthExclusive}, &v)
	return v, err
}

// NewExecutionID returns a fresh top-level execution ID (E_<ULID>), the same on every
// replay.
func NewExecutionID(ctx Context) (string, error) {
	var v string
	err := ctx.HostCall(abi.OpExecutionIDGenerate, nil, &v)
	return v, err
}
