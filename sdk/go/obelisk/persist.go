package obelisk

// Deterministic helpers for workflows. A workflow must not read a real clock or a real
// random source (its WASI ones are deterministic: the same on every replay); these make
// a value once, at random, record it in the execution's history, and return the recorded
// value on every replay.

// RandomU64 returns a random number in [min, maxExclusive), the same on every replay.
func RandomU64(ctx Context, min, maxExclusive uint64) (uint64, error) {
	var v uint64
	err := ctx.HostCall("random_u64", struct {
		Min          uint64 `json:"min"`
		MaxExclusive uint64 `json:"max_exclusive"`
	}{min, maxExclusive}, &v)
	return v, err
}

// RandomString returns a random alphanumeric string whose length is in
// [minLength, maxLengthExclusive), the same on every replay.
func RandomString(ctx Context, minLength, maxLengthExclusive uint32) (string, error) {
	var v string
	err := ctx.HostCall("random_string", struct {
		MinLength          uint32 `json:"min_length"`
		MaxLengthExclusive uint32 `json:"max_length_exclusive"`
	}{minLength, maxLengthExclusive}, &v)
	return v, err
}

// NewExecutionID returns a fresh top-level execution ID (E_<ULID>), the same on every
// replay.
func NewExecutionID(ctx Context) (string, error) {
	var v string
	err := ctx.HostCall("execution_id_generate", nil, &v)
	return v, err
}
