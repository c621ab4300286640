// Package vfs is the file-system seam used by Sense's storage engine.
//
// The log never touches package os directly: it goes through FS and File, so
// that every storage test can run on the in-memory file system (which can
// simulate a crash that loses unsynced writes, see MemFS) or on a
// fault-injecting wrapper (EIO, short writes, disk full, see FaultFS).
//
// The contract is deliberately small and states durability precisely:
//
//   - File.Sync makes the file's data durable (fdatasync on Linux). Data
//     written and not yet synced may be lost, wholly or partly, by a crash.
//   - A created, renamed or removed directory entry is durable only after
//     SyncDir on its parent directory.
//
// Optional capabilities are found by type assertion: a File backed by an
// operating-system file also implements OSFile, so a network edge can hand its
// descriptor to sendfile.
package vfs

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// File is an open file. ReadAt may be called concurrently with itself and
// with WriteAt on other ranges; the rest are not safe for concurrent use.
type File interface {
	io.ReaderAt
	io.WriterAt
	io.Closer
	// Sync makes the data written so far durable (fdatasync).
	Sync() error
	// Truncate changes the file's size. It is not durable until Sync.
	Truncate(size int64) error
	// Size returns the current size of the file.
	Size() (int64, error)
	// Name returns the path the file was opened with.
	Name() string
}

// FS is a file system.
type FS interface {
	// Create creates or truncates the named file for reading and writing.
	Create(name string) (File, error)
	// OpenRW opens an existing file for reading and writing.
	OpenRW(name string) (File, error)
	// Open opens an existing file for reading only.
	Open(name string) (File, error)
	// Remove removes a file. It is not durable until SyncDir of the parent.
	Remove(name string) error
	// Rename atomically renames a file, replacing newname if it exists. It is
	// not durable until SyncDir of the parent.
	Rename(oldname, newname string) error
	// MkdirAll creates a directory and its parents. It syncs every directory
	// it creates and the parent of each, so the new path survives a crash.
	MkdirAll(dir string) error
	// List returns the names (not paths) of the entries of dir, sorted.
	List(dir string) ([]string, error)
	// SyncDir makes the entries of dir durable.
	SyncDir(dir string) error
}

// Mkdirer is implemented by file systems that can create one directory
// without syncing anything: the new directory's entry in its parent is
// durable only after SyncDir of the parent, and the entries made in it
// only after SyncDir of the directory itself.
type Mkdirer interface {
	Mkdir(dir string) error
}

// Mkdir creates dir, whose parent must exist, without syncing: see
// Mkdirer. On a file system that does not implement Mkdirer it is
// MkdirAll, which syncs. A directory that exists already is not an error.
func Mkdir(fs FS, dir string) error {
	if m, ok := fs.(Mkdirer); ok {
		return m.Mkdir(dir)
	}
	return fs.MkdirAll(dir)
}

// OSFile is implemented by files backed by an operating-system file.
type OSFile interface {
	OSFile() *os.File
}

// Default is the operating-system file system.
var Default FS = osFS{}

// IsNotExist reports whether err says that a file or directory does not exist.
func IsNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }

type osFS struct{}

type osFile struct{ f *os.File }

func (f osFile) ReadAt(p []byte, off int64) (int, error)  { return f.f.ReadAt(p, off) }
func (f osFile) WriteAt(p []byte, off int64) (int, error) { return f.f.WriteAt(p, off) }
func (f osFile) Close() error                             { return f.f.Close() }
func (f osFile) Truncate(size int64) error                { return f.f.Truncate(size) }
func (f osFile) Name() string                             { return f.f.Name() }
func (f osFile) OSFile() *os.File                         { return f.f }

func (f osFile) Size() (int64, error) {
	fi, err := f.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (f osFile) Sync() error {
	rc, err := f.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: f.f.Name(), Err: serr}
	}
	return nil
}

func (osFS) Create(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) OpenRW(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Open(name string) (File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Remove(name string) error             { return os.Remove(name) }
func (osFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

func (fs osFS) MkdirAll(dir string) error {
	dir = filepath.Clean(dir)
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return &os.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := fs.MkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	if err := fs.SyncDir(dir); err != nil {
		return err
	}
	return fs.SyncDir(parent)
}

func (osFS) Mkdir(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return nil
}

func (osFS) List(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	sort.Strings(names)
	return names, nil
}

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return &os.PathError{Op: "fsync dir", Path: dir, Err: err}
	}
	return nil
}
