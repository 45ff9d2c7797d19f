package bench

import (
	"io/fs"
	"syscall"
)

// blocks is the number of 512-byte blocks a file occupies.
func blocks(info fs.FileInfo) int64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Blocks
	}
	return (info.Size() + 511) / 512
}
