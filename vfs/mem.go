package vfs

import (
	"errors"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// ErrCrashed is the error (wrapped in an *os.PathError) returned by every
// method of a File that was open when its MemFS crashed.
var ErrCrashed = errors.New("vfs: file system crashed")

// MemFS is an in-memory FS that can simulate a crash (power loss).
//
// It keeps, for every file, its current contents and its durable contents,
// and for every directory, its current entries and its durable entries:
//
//   - File.Sync makes the file's current contents durable. The writes and
//     truncations made since the last Sync are remembered, in order, as the
//     operations a crash may lose.
//   - Create, Rename and Remove change a directory's current entries; SyncDir
//     makes them durable. MkdirAll syncs every directory it creates and the
//     parent of each (all of that parent's entries become durable, as with
//     SyncDir).
//
// Crash and CrashClean revert the namespace to its durable state and keep,
// of each surviving file, its durable contents plus possibly some of its
// unsynced operations. Handles open at the time of the crash become dead.
//
// MemFS has a single root and no working directory: names are cleaned with
// path/filepath and relative names are resolved against the root, so "a/b"
// and "/a/b" name the same file. Only files can be renamed; Remove removes a
// file or an empty directory. A removed file stays usable through the
// handles already open on it, as on Linux.
//
// MemFS and its files are safe for concurrent use. The zero value is not
// usable; call NewMem.
type MemFS struct {
	mu   sync.Mutex
	root *memDir
	gen  uint64 // incremented by each crash; handles of older generations are dead
}

var _ FS = (*MemFS)(nil)

// NewMem returns an empty MemFS containing only its (durable) root directory.
func NewMem() *MemFS {
	return &MemFS{root: newMemDir()}
}

// memNode is a directory entry: a *memDir or a *memInode.
type memNode interface{ isMemNode() }

type memDir struct {
	cur map[string]memNode // current entries
	dur map[string]memNode // entries as of the last SyncDir
}

func newMemDir() *memDir {
	return &memDir{cur: map[string]memNode{}, dur: map[string]memNode{}}
}

func (d *memDir) sync() { d.dur = maps.Clone(d.cur) }

type memInode struct {
	data    []byte  // current contents
	durable []byte  // contents as of the last Sync
	ops     []memOp // operations since the last Sync, oldest first
}

func (*memDir) isMemNode()   {}
func (*memInode) isMemNode() {}

// memOp is an unsynced operation on a file: applying the ops of an inode in
// order to its durable contents gives its current contents.
type memOp struct {
	trunc bool   // a Truncate to size off, else a write of data at off
	off   int64  // write offset, or the new size for a truncation
	data  []byte // bytes written (a private copy)
}

func (op memOp) apply(buf []byte) []byte {
	if op.trunc {
		return resize(buf, op.off)
	}
	return writeBytes(buf, op.data, op.off)
}

// resize returns buf with length size, zero-filling any growth.
func resize(buf []byte, size int64) []byte {
	old := int64(len(buf))
	if size <= old {
		return buf[:size]
	}
	buf = slices.Grow(buf, int(size-old))[:size]
	clear(buf[old:]) // the spare capacity may hold bytes from before a shrink
	return buf
}

// writeBytes copies p into buf at off, growing (and zero-filling) buf as needed.
func writeBytes(buf, p []byte, off int64) []byte {
	if end := off + int64(len(p)); end > int64(len(buf)) {
		buf = resize(buf, end)
	}
	copy(buf[off:], p)
	return buf
}

func (n *memInode) write(p []byte, off int64) {
	n.data = writeBytes(n.data, p, off)
	n.ops = append(n.ops, memOp{off: off, data: slices.Clone(p)})
}

func (n *memInode) truncate(size int64) {
	n.data = resize(n.data, size)
	n.ops = append(n.ops, memOp{trunc: true, off: size})
}

func (n *memInode) sync() {
	for _, op := range n.ops {
		n.durable = op.apply(n.durable)
	}
	n.ops = nil
}

// crash replaces the contents of n with what a crash leaves: the durable
// contents, then the first k unsynced operations for a random k, then
// perhaps a torn prefix (real bytes or zeros) of the next write. A nil rng
// keeps only the durable contents.
func (n *memInode) crash(rng *rand.Rand) {
	data := slices.Clone(n.durable)
	if rng != nil && len(n.ops) > 0 {
		k := rng.IntN(len(n.ops) + 1)
		for _, op := range n.ops[:k] {
			data = op.apply(data)
		}
		if k < len(n.ops) && !n.ops[k].trunc && rng.IntN(2) == 0 {
			op := n.ops[k]
			torn := op.data[:rng.IntN(len(op.data)+1)]
			if rng.IntN(3) == 0 {
				torn = make([]byte, len(torn)) // allocated, never written
			}
			if len(torn) > 0 {
				data = writeBytes(data, torn, op.off)
			}
		}
	}
	n.data, n.durable, n.ops = data, slices.Clone(data), nil
}

func pathErr(op, name string, err error) error {
	return &os.PathError{Op: op, Path: name, Err: err}
}

// split returns the components of name below the root.
func split(name string) []string {
	p := filepath.Clean(string(filepath.Separator) + name)
	if len(p) == 1 {
		return nil
	}
	return strings.Split(p[1:], string(filepath.Separator))
}

// walk returns the directory named by parts, in the current namespace.
func (fs *MemFS) walk(parts []string) (*memDir, error) {
	d := fs.root
	for _, part := range parts {
		switch e := d.cur[part].(type) {
		case nil:
			return nil, os.ErrNotExist
		case *memDir:
			d = e
		default:
			return nil, syscall.ENOTDIR
		}
	}
	return d, nil
}

// lookupDir returns the directory called name.
func (fs *MemFS) lookupDir(op, name string) (*memDir, error) {
	d, err := fs.walk(split(name))
	if err != nil {
		return nil, pathErr(op, name, err)
	}
	return d, nil
}

// locate returns the parent directory of name and the last element of name.
// The returned error is not wrapped.
func (fs *MemFS) locate(name string) (*memDir, string, error) {
	parts := split(name)
	if len(parts) == 0 {
		return nil, "", syscall.EINVAL // the root has no parent
	}
	d, err := fs.walk(parts[:len(parts)-1])
	if err != nil {
		return nil, "", err
	}
	return d, parts[len(parts)-1], nil
}

// Create creates or truncates the named file. The new directory entry is not
// durable until SyncDir of the parent, and truncating an existing file is not
// durable until Sync.
func (fs *MemFS) Create(name string) (File, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	d, base, err := fs.locate(name)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	var ino *memInode
	switch e := d.cur[base].(type) {
	case nil:
		ino = &memInode{}
		d.cur[base] = ino
	case *memInode:
		ino = e
		ino.truncate(0)
	default:
		return nil, pathErr("open", name, syscall.EISDIR)
	}
	return fs.newFile(ino, name, false), nil
}

// OpenRW opens an existing file for reading and writing.
func (fs *MemFS) OpenRW(name string) (File, error) { return fs.open(name, false) }

// Open opens an existing file for reading only: WriteAt and Truncate fail.
func (fs *MemFS) Open(name string) (File, error) { return fs.open(name, true) }

func (fs *MemFS) open(name string, readOnly bool) (File, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	ino, err := fs.lookupFile("open", name)
	if err != nil {
		return nil, err
	}
	return fs.newFile(ino, name, readOnly), nil
}

func (fs *MemFS) lookupFile(op, name string) (*memInode, error) {
	d, base, err := fs.locate(name)
	if err != nil {
		return nil, pathErr(op, name, err)
	}
	switch e := d.cur[base].(type) {
	case nil:
		return nil, pathErr(op, name, os.ErrNotExist)
	case *memInode:
		return e, nil
	default:
		return nil, pathErr(op, name, syscall.EISDIR)
	}
}

func (fs *MemFS) newFile(ino *memInode, name string, readOnly bool) *memFile {
	return &memFile{fs: fs, ino: ino, name: name, gen: fs.gen, readOnly: readOnly}
}

// Remove removes a file or an empty directory. It is not durable until
// SyncDir of the parent. Handles open on a removed file keep working.
func (fs *MemFS) Remove(name string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	d, base, err := fs.locate(name)
	if err != nil {
		return pathErr("remove", name, err)
	}
	switch e := d.cur[base].(type) {
	case nil:
		return pathErr("remove", name, os.ErrNotExist)
	case *memDir:
		if len(e.cur) > 0 {
			return pathErr("remove", name, syscall.ENOTEMPTY)
		}
	}
	delete(d.cur, base)
	return nil
}

// Rename renames a file, replacing newname if it is a file. It is not durable
// until SyncDir of the parent (of both parents, if they differ). Renaming a
// directory fails with an error wrapping errors.ErrUnsupported.
func (fs *MemFS) Rename(oldname, newname string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fail := func(err error) error {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	od, obase, err := fs.locate(oldname)
	if err != nil {
		return fail(err)
	}
	nd, nbase, err := fs.locate(newname)
	if err != nil {
		return fail(err)
	}
	var ino *memInode
	switch e := od.cur[obase].(type) {
	case nil:
		return fail(os.ErrNotExist)
	case *memDir:
		return fail(errors.ErrUnsupported)
	case *memInode:
		ino = e
	}
	switch e := nd.cur[nbase].(type) {
	case *memDir:
		return fail(syscall.EISDIR)
	case *memInode:
		if e == ino {
			return nil // the same file: nothing to do
		}
	}
	delete(od.cur, obase)
	nd.cur[nbase] = ino
	return nil
}

// MkdirAll creates a directory and its parents. Each directory it creates
// is durable at once, and so are all entries of its parent.
func (fs *MemFS) MkdirAll(dir string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	d := fs.root
	for _, part := range split(dir) {
		switch e := d.cur[part].(type) {
		case nil:
			sub := newMemDir()
			d.cur[part] = sub
			d.sync()
			d = sub
		case *memDir:
			d = e
		default:
			return pathErr("mkdir", dir, syscall.ENOTDIR)
		}
	}
	return nil
}

// Mkdir creates a directory whose parent exists, durable only after
// SyncDir of the parent (vfs.Mkdirer). An existing directory is not an
// error.
func (fs *MemFS) Mkdir(dir string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	d, base, err := fs.locate(dir)
	if err != nil {
		return pathErr("mkdir", dir, err)
	}
	switch d.cur[base].(type) {
	case nil:
		d.cur[base] = newMemDir()
	case *memDir:
	default:
		return pathErr("mkdir", dir, syscall.ENOTDIR)
	}
	return nil
}

// List returns the sorted names of the files and directories in dir.
func (fs *MemFS) List(dir string) ([]string, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	d, err := fs.lookupDir("open", dir)
	if err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(d.cur)), nil
}

// SyncDir makes the current entries of dir durable.
func (fs *MemFS) SyncDir(dir string) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	d, err := fs.lookupDir("open", dir)
	if err != nil {
		return err
	}
	d.sync()
	return nil
}

// Crash simulates a power loss. Every open handle becomes dead: its methods
// return an error wrapping ErrCrashed. The namespace reverts to its durable
// state (unsynced creations vanish, unsynced renames revert, unsynced removals
// come back) and each surviving file keeps its durable contents followed by
// the first k of its unsynced operations, for k drawn from rng in
// 0..len(ops), and perhaps a torn part of operation k+1 if it is a write:
// a prefix of its bytes (of random length) or, one time in three, as many
// zeros, as when the file grew but the data never reached the disk.
//
// Afterwards the MemFS is usable again and everything in it is durable. The
// same rng state and the same history give the same result. A nil rng makes
// Crash behave like CrashClean.
func (fs *MemFS) Crash(rng *rand.Rand) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.gen++
	seen := map[*memInode]bool{}
	var revert func(d *memDir)
	revert = func(d *memDir) {
		d.cur = maps.Clone(d.dur)
		for _, name := range slices.Sorted(maps.Keys(d.dur)) { // sorted: reproducible
			switch e := d.dur[name].(type) {
			case *memDir:
				revert(e)
			case *memInode:
				// A file renamed from one directory to another may be
				// durable in both if both were synced in between; it then
				// survives under both names, as one file.
				if !seen[e] {
					seen[e] = true
					e.crash(rng)
				}
			}
		}
	}
	revert(fs.root)
}

// CrashClean simulates a power loss in which nothing unsynced survives: the
// namespace reverts to its durable state and every file to its durable
// contents. Open handles become dead, as with Crash.
func (fs *MemFS) CrashClean() { fs.Crash(nil) }

// ReadFile returns a copy of the current contents of the named file.
func (fs *MemFS) ReadFile(name string) ([]byte, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	ino, err := fs.lookupFile("open", name)
	if err != nil {
		return nil, err
	}
	return slices.Clone(ino.data), nil
}

// Corrupt XORs the byte at offset off of the named file with xor, in both its
// current and its durable contents, as a medium error would: no handle is
// involved and the damage is not an unsynced operation. The offset must be
// within the file's current size.
func (fs *MemFS) Corrupt(name string, off int64, xor byte) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	ino, err := fs.lookupFile("corrupt", name)
	if err != nil {
		return err
	}
	if off < 0 || off >= int64(len(ino.data)) {
		return pathErr("corrupt", name, syscall.EINVAL)
	}
	ino.data[off] ^= xor
	if off < int64(len(ino.durable)) {
		ino.durable[off] ^= xor
	}
	return nil
}

// memFile is a handle on a MemFS file. All state is guarded by fs.mu.
type memFile struct {
	fs       *MemFS
	ino      *memInode
	name     string
	gen      uint64 // the MemFS generation the handle was opened in
	readOnly bool
	closed   bool
}

// lock locks the MemFS and checks that the handle is usable.
func (f *memFile) lock(op string) error {
	f.fs.mu.Lock()
	switch {
	case f.closed:
		return pathErr(op, f.name, os.ErrClosed)
	case f.gen != f.fs.gen:
		return pathErr(op, f.name, ErrCrashed)
	}
	return nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	defer f.fs.mu.Unlock()
	if err := f.lock("read"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, pathErr("read", f.name, syscall.EINVAL)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off >= int64(len(f.ino.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.ino.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	defer f.fs.mu.Unlock()
	if err := f.lock("write"); err != nil {
		return 0, err
	}
	if f.readOnly {
		return 0, pathErr("write", f.name, syscall.EBADF)
	}
	if off < 0 {
		return 0, pathErr("write", f.name, syscall.EINVAL)
	}
	if len(p) > 0 {
		f.ino.write(p, off)
	}
	return len(p), nil
}

func (f *memFile) Truncate(size int64) error {
	defer f.fs.mu.Unlock()
	if err := f.lock("truncate"); err != nil {
		return err
	}
	if f.readOnly || size < 0 {
		return pathErr("truncate", f.name, syscall.EINVAL)
	}
	f.ino.truncate(size)
	return nil
}

func (f *memFile) Sync() error {
	defer f.fs.mu.Unlock()
	if err := f.lock("sync"); err != nil {
		return err
	}
	f.ino.sync()
	return nil
}

func (f *memFile) Size() (int64, error) {
	defer f.fs.mu.Unlock()
	if err := f.lock("stat"); err != nil {
		return 0, err
	}
	return int64(len(f.ino.data)), nil
}

func (f *memFile) Name() string { return f.name }

func (f *memFile) Close() error {
	defer f.fs.mu.Unlock()
	err := f.lock("close")
	f.closed = true
	return err
}
