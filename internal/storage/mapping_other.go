//go:build !unix

package storage

import "os"

// mmapSupported says that MapRange cannot map files on this platform, so
// that callers read them with OpenRange.
const mmapSupported = false

// mmap and munmap are never called here: MapRange checks Mappable first.

func mmap(*os.File, int64, int) ([]byte, error) { return nil, ErrNotMappable }

func munmap([]byte) error { return ErrNotMappable }
