//go:build linux && !amd64 && !arm64

package linmem

// sysMemfdCreate is 0 where wasmhost does not know memfd_create's system
// call number: images are not supported there (wasmhost copies instead).
const sysMemfdCreate = 0
