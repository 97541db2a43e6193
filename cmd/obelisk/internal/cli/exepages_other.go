//go:build !linux

package cli

// releaseExecutablePages does nothing outside Linux (exepages_linux.go says why it does
// there).
func releaseExecutablePages() (int64, error) { return 0, nil }
