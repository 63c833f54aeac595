//go:build unix

package storage

import (
	"os"
	"syscall"
)

// mmapSupported says that MapRange maps files on this platform.
const mmapSupported = true

// mmap maps the length (> 0) bytes of f at offset, a multiple of the page
// size, read-only and shared with the page cache.
func mmap(f *os.File, offset int64, length int) ([]byte, error) {
	return syscall.Mmap(int(f.Fd()), offset, length, syscall.PROT_READ, syscall.MAP_SHARED)
}

// munmap unmaps region, as returned by mmap.
func munmap(region []byte) error {
	return syscall.Munmap(region)
}
