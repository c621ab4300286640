package vfs

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
)

// ReadFile returns the whole contents of the named file.
func ReadFile(fs FS, name string) ([]byte, error) {
	f, err := fs.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, size)
	n, err := f.ReadAt(buf, 0)
	if err != nil && !(errors.Is(err, io.EOF) && int64(n) == size) {
		return nil, err
	}
	return buf, nil
}

// WriteFileAtomic replaces the named file with data durably: it writes
// name+".tmp", syncs it, renames it over name and syncs the directory. A
// crash leaves either the old contents or the new, never a mix.
func WriteFileAtomic(fs FS, name string, data []byte) error {
	tmp := name + ".tmp"
	f, err := fs.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fdatasync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fs.Rename(tmp, name); err != nil {
		return err
	}
	return fs.SyncDir(filepath.Dir(name))
}

// RemoveAll removes name and, if it is a directory, everything below it. A
// name that does not exist is not an error. Like Remove, it is not durable
// until SyncDir of the parent.
func RemoveAll(fs FS, name string) error {
	if entries, err := fs.List(name); err == nil {
		for _, e := range entries {
			if err := RemoveAll(fs, filepath.Join(name, e)); err != nil {
				return err
			}
		}
	}
	if err := fs.Remove(name); err != nil && !IsNotExist(err) {
		return err
	}
	return nil
}
