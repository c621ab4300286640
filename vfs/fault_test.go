package vfs_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/sensehq/sense/vfs"
)

func newFault(t *testing.T) (*vfs.FaultFS, *vfs.MemFS) {
	t.Helper()
	mem := vfs.NewMem()
	if err := mem.MkdirAll("/d"); err != nil {
		t.Fatal(err)
	}
	return vfs.NewFault(mem), mem
}

func create(t *testing.T, fs vfs.FS, name string) vfs.File {
	t.Helper()
	f, err := fs.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func isPathErr(err, want error) bool {
	var pe *os.PathError
	return errors.As(err, &pe) && errors.Is(err, want)
}

func TestFaultFailSync(t *testing.T) {
	fs, mem := newFault(t)
	f := create(t, fs, "/d/f") // opened before the fault is armed
	fs.SyncDir("/d")
	fs.FailSync(2, syscall.EIO)
	for i := range 2 {
		if _, err := f.WriteAt([]byte{'a' + byte(i)}, int64(i)); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatalf("sync %d: %v", i, err)
		}
	}
	f.WriteAt([]byte("c"), 2)
	for i := range 3 { // sticky
		if err := f.Sync(); !isPathErr(err, syscall.EIO) {
			t.Fatalf("sync after the limit (%d): %v, want EIO", i, err)
		}
	}
	g := create(t, fs, "/d/g") // new handles fail too
	if err := g.Sync(); !isPathErr(err, syscall.EIO) {
		t.Fatalf("sync of a new file: %v, want EIO", err)
	}
	// A failed sync made nothing durable.
	mem.CrashClean()
	if got := readFile(t, mem, "/d/f"); got != "ab" {
		t.Fatalf("after crash f = %q, want %q", got, "ab")
	}
	if s := fs.Stats(); s.Syncs != 6 {
		t.Errorf("Stats.Syncs = %d, want 6", s.Syncs)
	}
}

func TestFaultFailSyncDir(t *testing.T) {
	fs, mem := newFault(t)
	fs.FailSyncDir(1, nil) // nil: EIO
	create(t, fs, "/d/a")
	if err := fs.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	create(t, fs, "/d/b")
	for range 2 {
		if err := fs.SyncDir("/d"); !isPathErr(err, syscall.EIO) {
			t.Fatalf("SyncDir: %v, want EIO", err)
		}
	}
	mem.CrashClean()
	if names, _ := mem.List("/d"); strings.Join(names, ",") != "a" {
		t.Fatalf("after crash /d holds %q, want only a", names)
	}
}

func TestFaultFailWrite(t *testing.T) {
	fs, mem := newFault(t)
	f := create(t, fs, "/d/f")
	enospc := &os.PathError{Op: "write", Path: "/d/f", Err: syscall.ENOSPC}
	fs.FailWrite(1, enospc)
	if n, err := f.WriteAt([]byte("ok"), 0); n != 2 || err != nil {
		t.Fatalf("first write = %d, %v", n, err)
	}
	for range 2 {
		if n, err := f.WriteAt([]byte("no"), 2); n != 0 || !errors.Is(err, enospc) || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("write after the limit = %d, %v", n, err)
		}
	}
	if got := readFile(t, mem, "/d/f"); got != "ok" {
		t.Fatalf("f = %q, want %q", got, "ok")
	}
	// Other operations still work.
	if err := f.Truncate(1); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

func TestFaultShortWrite(t *testing.T) {
	fs, mem := newFault(t)
	f := create(t, fs, "/d/f")
	fs.ShortWrite(1)
	f.WriteAt([]byte("1234"), 0)
	n, err := f.WriteAt([]byte("abcdef"), 4)
	if n != 3 || !isPathErr(err, io.ErrShortWrite) {
		t.Fatalf("short write = %d, %v; want 3, ErrShortWrite", n, err)
	}
	if n, err := f.WriteAt([]byte("XY"), 7); n != 2 || err != nil { // once only
		t.Fatalf("write after the short one = %d, %v", n, err)
	}
	if got := readFile(t, mem, "/d/f"); got != "1234abcXY" {
		t.Fatalf("f = %q", got)
	}
}

func TestFaultDiskFull(t *testing.T) {
	fs, mem := newFault(t)
	f := create(t, fs, "/d/f")
	f.WriteAt([]byte("before"), 0) // not counted against the limit
	fs.DiskFull(10)
	if n, err := f.WriteAt([]byte("123456"), 6); n != 6 || err != nil {
		t.Fatalf("write within the limit = %d, %v", n, err)
	}
	if n, err := f.WriteAt([]byte("abcdef"), 12); n != 4 || !isPathErr(err, syscall.ENOSPC) {
		t.Fatalf("write across the limit = %d, %v; want 4, ENOSPC", n, err)
	}
	if n, err := f.WriteAt([]byte("x"), 16); n != 0 || !isPathErr(err, syscall.ENOSPC) {
		t.Fatalf("write on a full disk = %d, %v; want 0, ENOSPC", n, err)
	}
	if n, err := f.WriteAt(nil, 16); n != 0 || err != nil {
		t.Fatalf("empty write on a full disk = %d, %v", n, err)
	}
	if got := readFile(t, mem, "/d/f"); got != "before123456abcd" {
		t.Fatalf("f = %q", got)
	}
	if s := fs.Stats(); s.BytesWritten != 16 || s.Writes != 5 {
		t.Errorf("Stats = %+v", s)
	}
}

func TestFaultMatch(t *testing.T) {
	fs, _ := newFault(t)
	fs.SetMatch(func(name string) bool { return filepath.Ext(name) == ".log" })
	log := create(t, fs, "/d/1.log")
	idx := create(t, fs, "/d/1.idx")
	fs.FailWrite(0, nil)
	fs.FailSync(0, nil)
	if _, err := idx.WriteAt([]byte("x"), 0); err != nil {
		t.Errorf("unmatched write: %v", err)
	}
	if err := idx.Sync(); err != nil {
		t.Errorf("unmatched sync: %v", err)
	}
	if _, err := log.WriteAt([]byte("x"), 0); !errors.Is(err, syscall.EIO) {
		t.Errorf("matched write: %v, want EIO", err)
	}
	if err := log.Sync(); !errors.Is(err, syscall.EIO) {
		t.Errorf("matched sync: %v, want EIO", err)
	}
	if s := fs.Stats(); s.Writes != 1 || s.Syncs != 1 {
		t.Errorf("Stats = %+v, want only the .log calls counted", s)
	}
}

func TestFaultReset(t *testing.T) {
	fs, _ := newFault(t)
	f := create(t, fs, "/d/f")
	fs.FailSync(0, nil)
	fs.FailSyncDir(0, nil)
	fs.FailWrite(0, nil)
	fs.ShortWrite(0)
	fs.DiskFull(0)
	fs.Reset()
	if n, err := f.WriteAt([]byte("abc"), 0); n != 3 || err != nil {
		t.Errorf("write after Reset = %d, %v", n, err)
	}
	if err := f.Sync(); err != nil {
		t.Errorf("sync after Reset: %v", err)
	}
	if err := fs.SyncDir("/d"); err != nil {
		t.Errorf("SyncDir after Reset: %v", err)
	}
	if s := fs.Stats(); s != (vfs.FaultStats{Writes: 1, Syncs: 1, SyncDirs: 1, BytesWritten: 3}) {
		t.Errorf("Stats = %+v", s)
	}
}

// TestFaultOverOS checks that faults apply on the real file system too, and
// that a failed write leaves the file untouched.
func TestFaultOverOS(t *testing.T) {
	fs := vfs.NewFault(vfs.Default)
	name := filepath.Join(t.TempDir(), "f")
	f := create(t, fs, name)
	if _, ok := f.(vfs.OSFile); ok {
		t.Error("a FaultFS file exposes its OS file")
	}
	fs.ShortWrite(0)
	if n, err := f.WriteAt([]byte("abcd"), 0); n != 2 || !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("short write = %d, %v", n, err)
	}
	fs.FailSync(0, syscall.EIO)
	if err := f.Sync(); !isPathErr(err, syscall.EIO) {
		t.Fatalf("sync: %v", err)
	}
	if b, err := os.ReadFile(name); err != nil || string(b) != "ab" {
		t.Fatalf("file = %q, %v", b, err)
	}
}

func TestFaultConcurrent(t *testing.T) {
	fs, _ := newFault(t)
	f := create(t, fs, "/d/f")
	const workers, perWorker, allowed = 4, 50, 77
	fs.FailWrite(allowed, nil)
	var mu sync.Mutex
	ok := 0
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				if _, err := f.WriteAt([]byte{1}, int64(w*perWorker+i)); err == nil {
					mu.Lock()
					ok++
					mu.Unlock()
				}
				fs.Stats()
			}
		})
	}
	wg.Wait()
	if ok != allowed {
		t.Fatalf("%d writes succeeded, want %d", ok, allowed)
	}
}
