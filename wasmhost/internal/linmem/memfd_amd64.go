//go:build linux

package linmem

// sysMemfdCreate is memfd_create's system call number (missing from package
// syscall on amd64).
const sysMemfdCreate = 319
