//go:build !wasip1

package obelisk

// hostCall is the host operation of a build that is not a wasip1 module:
// outside an Obelisk host every operation fails (use TestHost in tests).
func hostCall([]byte) ([]byte, error) {
	return nil, errNoHost
}
