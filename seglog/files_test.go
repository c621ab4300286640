package seglog

import (
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/sensehq/sense/vfs"
)

// Many logs share a cache of 4 open files: after every append (fsync
// always) the cache holds at most its limit, files are closed and reopened
// on demand, and every log reads back what it was given, before and after
// a reopen.
func TestFilesBoundOpenFiles(t *testing.T) {
	mem := vfs.NewMem()
	files := NewFiles(4)
	o := Options{FS: mem, Files: files, SegmentBytes: 4 << 10, Logger: quiet}
	const logs = 30
	ls := make([]*Log, logs)
	for i := range ls {
		ls[i] = openT(t, fmt.Sprintf("/h/p-%d", i), o)
	}
	if st := files.Stats(); st.Open != 0 {
		t.Fatalf("new logs hold %d files", st.Open)
	}
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for round := range 20 {
				for i := w; i < logs; i += 3 {
					if _, err := ls[i].Append(mkBatch(fmt.Sprintf("%d-%d", i, round), 3, 100, -1, -1)); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	st := files.Stats()
	if st.Open > 4 || st.Evictions == 0 || st.Misses == 0 {
		t.Fatalf("after the appends: %+v, want at most 4 open and evictions", st)
	}
	for i, l := range ls {
		if got := len(readAll(t, l)); got != 20 {
			t.Fatalf("log %d: %d batches, want 20", i, got)
		}
		if l.Segments() < 2 {
			t.Fatalf("log %d: %d segments, want rolls", i, l.Segments())
		}
	}
	if st := files.Stats(); st.Open > 4 {
		t.Fatalf("after the reads: %+v", st)
	}
	for _, l := range ls {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if st := files.Stats(); st.Open != 0 {
		t.Fatalf("after Close: %d files open", st.Open)
	}
	for i := range ls {
		ls[i] = openT(t, fmt.Sprintf("/h/p-%d", i), o)
		if got := len(readAll(t, ls[i])); got != 20 {
			t.Fatalf("log %d reopened: %d batches, want 20", i, got)
		}
	}
	if st := files.Stats(); st.Open > 4 {
		t.Fatalf("after reopening: %+v", st)
	}
}

// A file with writes no fdatasync covered is never closed by the cache:
// after a failed fsync it stays open (its log failed; the sync is never
// retried on a new descriptor), whatever the limit, until its log closes.
func TestFilesKeepDirtyFiles(t *testing.T) {
	mem := vfs.NewMem()
	fault := vfs.NewFault(mem)
	files := NewFiles(1)
	o := Options{FS: fault, Files: files, Logger: quiet}
	bad := openT(t, "/h/bad", o)
	if _, err := bad.Append(mkBatch("a", 1, 10, -1, -1)); err != nil {
		t.Fatal(err)
	}
	fault.SetMatch(func(name string) bool { return strings.HasPrefix(name, "/h/bad/") })
	fault.FailSync(0, syscall.EIO)
	if _, err := bad.Append(mkBatch("b", 1, 10, -1, -1)); err == nil {
		t.Fatal("append with a failing fsync succeeded")
	}
	fault.Reset()
	// Other logs use the cache meanwhile: the failed log's file is not
	// evicted for them.
	for i := range 5 {
		l := openT(t, fmt.Sprintf("/h/ok-%d", i), o)
		if _, err := l.Append(mkBatch("c", 1, 10, -1, -1)); err != nil {
			t.Fatal(err)
		}
	}
	h := bad.active.f
	files.mu.Lock()
	open, dirty := h.f != nil, h.synced != h.writes
	files.mu.Unlock()
	if !open || !dirty {
		t.Fatalf("the failed log's segment: open %v, dirty %v; want both", open, dirty)
	}
	if _, err := bad.Append(mkBatch("d", 1, 10, -1, -1)); err == nil {
		t.Fatal("append to a failed log succeeded")
	}
	bad.Close()
	files.mu.Lock()
	open = h.f != nil
	files.mu.Unlock()
	if open {
		t.Fatal("the failed log's segment is still open after Close")
	}
}

// A Slice keeps its descriptor open, whatever the cache's limit, until
// Release.
func TestFilesSliceKeepsFileOpen(t *testing.T) {
	mem := vfs.NewMem()
	files := NewFiles(1)
	o := Options{FS: mem, Files: files, Logger: quiet}
	a := openT(t, "/h/a", o)
	if _, err := a.Append(mkBatch("a", 2, 10, -1, -1)); err != nil {
		t.Fatal(err)
	}
	sl, err := a.Locate(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		l := openT(t, fmt.Sprintf("/h/b-%d", i), o)
		if _, err := l.Append(mkBatch("b", 1, 10, -1, -1)); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, sl.Len)
	if _, err := sl.File.ReadAt(buf, sl.Pos); err != nil {
		t.Fatalf("reading a Slice after other logs used the cache: %v", err)
	}
	sl.Release()
	if st := files.Stats(); st.Open > 1 {
		t.Fatalf("after Release: %+v", st)
	}
}
