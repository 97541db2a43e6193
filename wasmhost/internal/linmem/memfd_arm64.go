//go:build linux

package linmem

// sysMemfdCreate is memfd_create's system call number.
const sysMemfdCreate = 279
