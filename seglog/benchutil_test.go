//go:build linux

package seglog

import (
	"os"
	"syscall"
)

// On Linux the recovery benchmark can evict a log's files from the page
// cache (posix_fadvise POSIX_FADV_DONTNEED), so that one variant measures a
// recovery that reads from the device, as after a machine restart. This
// touches only the benchmark's own files; it needs no privileges and does not
// drop anyone else's cache.
func init() {
	evictFromPageCache = func(path string) error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		const posixFadvDontneed = 4
		_, _, errno := syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, posixFadvDontneed, 0, 0)
		if errno != 0 {
			return &os.PathError{Op: "fadvise", Path: path, Err: errno}
		}
		return nil
	}
}

func init() {
	isTmpfs = func(dir string) bool {
		const tmpfsMagic = 0x01021994
		var st syscall.Statfs_t
		return syscall.Statfs(dir, &st) == nil && st.Type == tmpfsMagic
	}
}
