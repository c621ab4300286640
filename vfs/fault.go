package vfs

import (
	"io"
	"sync"
	"syscall"
)

// FaultFS wraps an FS and injects faults into the files opened through it:
// failing syncs, failing writes, short writes and a full disk. Faults can be
// armed and cleared at any time and affect handles already open.
//
// Each fault counts calls from the moment it is armed: FailSync(2, err) lets
// the next two Sync calls through and fails every later one. Only files whose
// name (as given to Create, Open or OpenRW) passes the filter set by SetMatch
// are faulted or counted; by default all are.
//
// Injected errors are wrapped in an *os.PathError, so errors.Is(err, e)
// holds for the error e given when arming the fault. A failed Sync or SyncDir
// does not reach the inner FS, so nothing is made durable; a failed write
// writes nothing, or only the reported count of leading bytes.
//
// Files opened through a FaultFS do not implement OSFile, so all I/O goes
// through the wrapper. Other FS methods pass straight through; in particular
// the directory syncs done by MkdirAll are not subject to FailSyncDir.
//
// FaultFS is safe for concurrent use.
type FaultFS struct {
	inner FS

	mu      sync.Mutex
	match   func(name string) bool
	stats   FaultStats
	sync    stickyFault
	syncDir stickyFault
	write   stickyFault
	shortAt int   // index of the write to cut short; -1: none
	fullAt  int64 // BytesWritten at which the disk is full; -1: never
}

var _ FS = (*FaultFS)(nil)

// FaultStats counts the calls that went through a FaultFS (on files passing
// its filter), since it was made or last Reset, failed ones included.
type FaultStats struct {
	Writes       int   // WriteAt calls
	Syncs        int   // File.Sync calls
	SyncDirs     int   // SyncDir calls
	BytesWritten int64 // bytes passed on to the inner FS by WriteAt
}

// stickyFault fails every call numbered at or after at (counting from 0).
type stickyFault struct {
	at  int
	err error // nil: disarmed
}

func (s *stickyFault) arm(count, after int, err error) {
	if err == nil {
		err = syscall.EIO
	}
	*s = stickyFault{at: count + max(after, 0), err: err}
}

// check returns the error for the call numbered i, or nil.
func (s *stickyFault) check(i int) error {
	if s.err != nil && i >= s.at {
		return s.err
	}
	return nil
}

// NewFault returns a FaultFS wrapping inner, with no fault armed.
func NewFault(inner FS) *FaultFS {
	return &FaultFS{inner: inner, shortAt: -1, fullAt: -1}
}

// SetMatch restricts the file faults (and FaultStats, except SyncDirs) to
// files whose name satisfies match; nil means all files. SyncDir is not
// filtered.
func (f *FaultFS) SetMatch(match func(name string) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.match = match
}

// FailSync makes File.Sync succeed for the next after calls, then fail with
// err (syscall.EIO if nil) from then on, until Reset.
func (f *FaultFS) FailSync(after int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sync.arm(f.stats.Syncs, after, err)
}

// FailSyncDir makes SyncDir succeed for the next after calls, then fail with
// err (syscall.EIO if nil) from then on, until Reset.
func (f *FaultFS) FailSyncDir(after int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncDir.arm(f.stats.SyncDirs, after, err)
}

// FailWrite makes WriteAt succeed for the next after calls, then fail with
// err (syscall.EIO if nil), writing nothing, from then on, until Reset.
func (f *FaultFS) FailWrite(after int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.write.arm(f.stats.Writes, after, err)
}

// ShortWrite lets the next after non-empty WriteAt calls through and cuts the
// one after them short: it writes only the first half of its bytes and
// returns that count and io.ErrShortWrite. It happens once.
func (f *FaultFS) ShortWrite(after int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shortAt = f.stats.Writes + max(after, 0)
}

// DiskFull lets limit more bytes be written (counted as in
// FaultStats.BytesWritten, overwrites included); a write that does not fit
// writes the part that does and returns that count and syscall.ENOSPC.
func (f *FaultFS) DiskFull(limit int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fullAt = f.stats.BytesWritten + max(limit, 0)
}

// Reset disarms every fault and zeroes the FaultStats. The filter set by
// SetMatch stays.
func (f *FaultFS) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats = FaultStats{}
	f.sync, f.syncDir, f.write = stickyFault{}, stickyFault{}, stickyFault{}
	f.shortAt, f.fullAt = -1, -1
}

// Stats returns the calls counted so far.
func (f *FaultFS) Stats() FaultStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// matches reports whether faults apply to the named file. f.mu must be held.
func (f *FaultFS) matches(name string) bool {
	return f.match == nil || f.match(name)
}

// planWrite decides the fate of a write of size bytes to the named file: it
// returns how many leading bytes to pass on, and the error to report.
func (f *FaultFS) planWrite(name string, size int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.matches(name) {
		return size, nil
	}
	i := f.stats.Writes
	f.stats.Writes++
	if err := f.write.check(i); err != nil {
		return 0, err
	}
	n, err := size, error(nil)
	if f.shortAt >= 0 && i >= f.shortAt && size > 0 {
		f.shortAt = -1
		n, err = size/2, io.ErrShortWrite
	}
	if room := f.fullAt - f.stats.BytesWritten; f.fullAt >= 0 && int64(n) > room {
		n, err = int(max(room, 0)), syscall.ENOSPC
	}
	f.stats.BytesWritten += int64(n)
	return n, err
}

func (f *FaultFS) planSync(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.matches(name) {
		return nil
	}
	i := f.stats.Syncs
	f.stats.Syncs++
	return f.sync.check(i)
}

// Create creates or truncates the named file in the inner FS.
func (f *FaultFS) Create(name string) (File, error) { return f.wrap(f.inner.Create(name)) }

// OpenRW opens an existing file of the inner FS for reading and writing.
func (f *FaultFS) OpenRW(name string) (File, error) { return f.wrap(f.inner.OpenRW(name)) }

// Open opens an existing file of the inner FS for reading only.
func (f *FaultFS) Open(name string) (File, error) { return f.wrap(f.inner.Open(name)) }

func (f *FaultFS) wrap(file File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

// Remove removes a file of the inner FS.
func (f *FaultFS) Remove(name string) error { return f.inner.Remove(name) }

// Rename renames a file of the inner FS.
func (f *FaultFS) Rename(oldname, newname string) error { return f.inner.Rename(oldname, newname) }

// MkdirAll creates a directory and its parents in the inner FS.
func (f *FaultFS) MkdirAll(dir string) error { return f.inner.MkdirAll(dir) }

// Mkdir creates a directory in the inner FS (vfs.Mkdir).
func (f *FaultFS) Mkdir(dir string) error { return Mkdir(f.inner, dir) }

// List lists a directory of the inner FS.
func (f *FaultFS) List(dir string) ([]string, error) { return f.inner.List(dir) }

// SyncDir syncs a directory of the inner FS, unless FailSyncDir says it fails.
func (f *FaultFS) SyncDir(dir string) error {
	f.mu.Lock()
	i := f.stats.SyncDirs
	f.stats.SyncDirs++
	err := f.syncDir.check(i)
	f.mu.Unlock()
	if err != nil {
		return pathErr("fsync dir", dir, err)
	}
	return f.inner.SyncDir(dir)
}

// faultFile is a File opened through a FaultFS.
type faultFile struct {
	File
	fs *FaultFS
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	n, err := f.fs.planWrite(f.Name(), len(p))
	if err == nil || n > 0 {
		if m, ierr := f.File.WriteAt(p[:n], off); ierr != nil {
			return m, ierr
		}
	}
	if err != nil {
		return n, pathErr("write", f.Name(), err)
	}
	return n, nil
}

func (f *faultFile) Sync() error {
	if err := f.fs.planSync(f.Name()); err != nil {
		return pathErr("sync", f.Name(), err)
	}
	return f.File.Sync()
}
