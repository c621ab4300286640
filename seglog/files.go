package seglog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/sensehq/sense/vfs"
)

// Files is a cache of open segment files shared by the logs of a process
// (Options.Files), so that the open files of many logs stay within a
// budget: a node of 10,000 pipelines does not hold 30,000 descriptors.
// A log keeps a handle on each of its segments; the handle opens the
// file on use and the cache closes the least recently used handles past
// its limit, to be reopened on the next use.
//
// The eviction rule keeps the log's durability guarantees. A file is
// closed by the cache only when
//
//   - no operation is running on it and no Slice holds it (pinned files
//     are never closed: a read or a sendfile never loses its descriptor);
//   - every write and truncation made through it is covered by a
//     successful fdatasync made through it (a dirty file is never closed:
//     closing it unsynced would leave the data's fate to a writeback whose
//     error no one would see, and a later fdatasync on a new descriptor
//     could succeed falsely, the "fsyncgate" case). A file whose fdatasync
//     failed therefore stays open and dirty until its log closes: its log
//     is failed, and the sync is never retried on a fresh descriptor.
//
// The active segment of a log under SyncAlways is clean between group
// commits; under SyncInterval between ticks; under SyncNever only after a
// checkpoint, a roll or Close, so many busy logs under SyncNever can hold
// the cache above its limit for a while: the limit bounds what the cache
// keeps open for reuse, and Stats shows what it holds.
//
// Files is safe for concurrent use. The zero value is not usable: call
// NewFiles.
type Files struct {
	limit int

	mu   sync.Mutex
	cond sync.Cond // on mu: a file finished opening
	lru  lruList   // open, unpinned and clean files; front is most recent
	open int       // descriptors held (opening ones included)
	hits uint64    // uses that found the file open
	miss uint64    // uses that opened it
	evic uint64    // files closed to stay within the limit
	max  int       // most descriptors held at once
}

// NewFiles returns a cache that keeps at most limit segment files open
// while they are idle and clean; limit <= 0 means no limit.
func NewFiles(limit int) *Files {
	c := &Files{limit: limit}
	c.cond.L = &c.mu
	return c
}

// FilesStats are a cache's counters.
type FilesStats struct {
	Open      int    // descriptors held now
	MaxOpen   int    // most held at once
	Limit     int    // the configured limit (0: none)
	Hits      uint64 // uses of a file that was open
	Misses    uint64 // uses that (re)opened it
	Evictions uint64 // files closed to stay within the limit
}

// Stats returns the cache's counters.
func (c *Files) Stats() FilesStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return FilesStats{Open: c.open, MaxOpen: c.max, Limit: c.limit, Hits: c.hits, Misses: c.miss, Evictions: c.evic}
}

// segFile is a segment's handle in a Files cache. It implements vfs.File:
// each call opens the file if it is closed and pins it while it runs.
// Every field is guarded by files.mu.
type segFile struct {
	files *Files
	fs    vfs.FS
	path  string // the file's current name
	// create: the file does not exist yet; the first use creates it (and
	// its directory, without a sync: see Log).
	create bool

	f       vfs.File
	opening bool // a use is opening f, without mu
	pins    int
	// inLRU: in files.lru (open, unpinned and clean), between prev and
	// next.
	inLRU      bool
	prev, next *segFile
	writes     uint64 // writes and truncations started
	done       uint64 // writes and truncations returned
	synced     uint64 // writes that returned before a successful Sync began
	closed     bool
}

var _ vfs.File = (*segFile)(nil)

// touch opens (or creates) the file now, so that an error shows here.
func (h *segFile) touch() error {
	if _, err := h.pin(false); err != nil {
		return err
	}
	h.unpin(false)
	return nil
}

// ErrOpenFile is matched by the error of a read or an append that could
// not open (or create) its segment file, for example because the process
// reached its open-file limit (EMFILE). Nothing was read or written: unlike
// a failed write or fsync, it does not fail the log, and a retry may
// succeed.
var ErrOpenFile = errors.New("seglog: cannot open segment file")

// openError is the error of a failed open of a segment file.
type openError struct{ err error }

func (e *openError) Error() string        { return "seglog: open segment file: " + e.err.Error() }
func (e *openError) Unwrap() error        { return e.err }
func (e *openError) Is(target error) bool { return target == ErrOpenFile }

// errFileClosed is returned by a segFile used after Close.
var errFileClosed = errors.New("seglog: segment file closed")

// handle returns a handle on the segment file at path, which exists (it
// is opened on first use) or, with create, is created on first use.
func (c *Files) handle(fs vfs.FS, path string, create bool) *segFile {
	return &segFile{files: c, fs: fs, path: path, create: create}
}

// pin opens the file if needed and keeps it open until unpin. write says
// the use will write or truncate it.
func (h *segFile) pin(write bool) (vfs.File, error) {
	c := h.files
	c.mu.Lock()
	for {
		if h.closed {
			c.mu.Unlock()
			return nil, &os.PathError{Op: "use", Path: h.path, Err: errFileClosed}
		}
		if !h.opening {
			break
		}
		c.cond.Wait()
	}
	h.pins++
	if h.inLRU {
		c.lru.remove(h)
	}
	if h.f != nil {
		if write {
			h.writes++
		}
		c.hits++
		f := h.f
		c.mu.Unlock()
		return f, nil
	}
	c.miss++
	h.opening = true
	c.open++
	c.max = max(c.max, c.open)
	path, create := h.path, h.create
	shut := c.evictLocked()
	c.mu.Unlock()
	closeAll(shut)

	f, err := h.openFile(path, create)

	c.mu.Lock()
	h.opening = false
	c.cond.Broadcast()
	if err != nil {
		err = &openError{err: err}
		c.open--
		h.pins--
		h.idleLocked()
		c.mu.Unlock()
		return nil, err
	}
	h.f, h.create = f, false
	if write {
		h.writes++
	}
	c.mu.Unlock()
	return f, nil
}

func (h *segFile) openFile(path string, create bool) (vfs.File, error) {
	if !create {
		return h.fs.OpenRW(path)
	}
	if err := vfs.Mkdir(h.fs, filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("create directory of %s: %w", path, err)
	}
	return h.fs.Create(path)
}

// unpin ends a use begun by pin, with the same write.
func (h *segFile) unpin(write bool) {
	c := h.files
	c.mu.Lock()
	if write {
		h.done++
	}
	h.pins--
	h.idleLocked()
	shut := c.evictLocked()
	c.mu.Unlock()
	closeAll(shut)
}

// idleLocked puts an open, unpinned, clean file at the front of the LRU
// list, where it may be evicted. Called with files.mu held.
func (h *segFile) idleLocked() {
	if h.f != nil && h.pins == 0 && h.synced == h.writes && !h.inLRU && !h.closed {
		h.files.lru.pushFront(h)
	}
}

// lruList is a list of segment files linked through their prev and next
// fields, so that a file going idle (after every sync) allocates nothing.
type lruList struct {
	front, back *segFile
}

func (l *lruList) pushFront(h *segFile) {
	h.prev, h.next, h.inLRU = nil, l.front, true
	if l.front != nil {
		l.front.prev = h
	} else {
		l.back = h
	}
	l.front = h
}

func (l *lruList) remove(h *segFile) {
	if h.prev != nil {
		h.prev.next = h.next
	} else {
		l.front = h.next
	}
	if h.next != nil {
		h.next.prev = h.prev
	} else {
		l.back = h.prev
	}
	h.prev, h.next, h.inLRU = nil, nil, false
}

// evictLocked takes the least recently used idle files off the cache
// while it holds more than its limit, and returns them for closeAll.
// Called with mu held.
func (c *Files) evictLocked() []vfs.File {
	var shut []vfs.File
	for c.limit > 0 && c.open > c.limit {
		h := c.lru.back
		if h == nil {
			break // every open file is in use or dirty
		}
		c.lru.remove(h)
		shut = append(shut, h.f)
		h.f = nil
		c.open--
		c.evic++
	}
	return shut
}

// closeAll closes evicted descriptors. They were clean: their data is
// durable, so a close error loses nothing.
func closeAll(fs []vfs.File) {
	for _, f := range fs {
		f.Close()
	}
}

func (h *segFile) ReadAt(p []byte, off int64) (int, error) {
	f, err := h.pin(false)
	if err != nil {
		return 0, err
	}
	defer h.unpin(false)
	return f.ReadAt(p, off)
}

func (h *segFile) WriteAt(p []byte, off int64) (int, error) {
	f, err := h.pin(true)
	if err != nil {
		return 0, err
	}
	defer h.unpin(true)
	return f.WriteAt(p, off)
}

func (h *segFile) Truncate(size int64) error {
	f, err := h.pin(true)
	if err != nil {
		return err
	}
	defer h.unpin(true)
	return f.Truncate(size)
}

func (h *segFile) Size() (int64, error) {
	f, err := h.pin(false)
	if err != nil {
		return 0, err
	}
	defer h.unpin(false)
	return f.Size()
}

// Sync fdatasyncs the file; on success, the writes that had returned
// before it began are clean (one still running may not be covered). A
// failed Sync leaves the file dirty for good (see Files).
func (h *segFile) Sync() error {
	c := h.files
	c.mu.Lock()
	if h.f == nil && !h.opening && !h.closed && h.synced == h.writes {
		// Closed by the cache, which closes only clean files (or never
		// written): nothing to sync.
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	f, err := h.pin(false)
	if err != nil {
		return err
	}
	c.mu.Lock()
	covered := h.done
	c.mu.Unlock()
	err = f.Sync()
	if err == nil {
		c.mu.Lock()
		h.synced = max(h.synced, covered)
		c.mu.Unlock()
	}
	h.unpin(false)
	return err
}

// Name returns the file's current name.
func (h *segFile) Name() string {
	h.files.mu.Lock()
	defer h.files.mu.Unlock()
	return h.path
}

// rename renames the file to path (fs.Rename, keeping it pinned so that
// no reopen can look for it between the rename and the new name).
func (h *segFile) rename(path string) error {
	if _, err := h.pin(false); err != nil {
		return err
	}
	defer h.unpin(false)
	h.files.mu.Lock()
	old := h.path
	h.files.mu.Unlock()
	if err := h.fs.Rename(old, path); err != nil {
		return err
	}
	h.files.mu.Lock()
	h.path = path
	h.files.mu.Unlock()
	return nil
}

// Close closes the file for good and takes it out of the cache. The log
// closes a segment's file only once nothing uses it (segment.maybeClose).
func (h *segFile) Close() error {
	c := h.files
	c.mu.Lock()
	for h.opening {
		c.cond.Wait()
	}
	if h.closed {
		c.mu.Unlock()
		return nil
	}
	h.closed = true
	if h.inLRU {
		c.lru.remove(h)
	}
	f := h.f
	h.f = nil
	if f != nil {
		c.open--
	}
	c.mu.Unlock()
	if f == nil {
		return nil
	}
	return f.Close()
}
