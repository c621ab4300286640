package vfs_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/sensehq/sense/vfs"
)

// TestConformance runs the same basic checks over the OS file system, MemFS
// and a FaultFS with no fault armed.
func TestConformance(t *testing.T) {
	t.Run("os", func(t *testing.T) { testFS(t, vfs.Default, t.TempDir()) })
	t.Run("mem", func(t *testing.T) { testFS(t, vfs.NewMem(), "/tmp/conformance") })
	t.Run("mem-relative", func(t *testing.T) { testFS(t, vfs.NewMem(), "data") })
	t.Run("fault", func(t *testing.T) { testFS(t, vfs.NewFault(vfs.NewMem()), "/data") })
}

func testFS(t *testing.T, fs vfs.FS, dir string) {
	path := func(name string) string { return filepath.Join(dir, name) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	wantContent := func(name, want string) {
		t.Helper()
		f, err := fs.Open(path(name))
		must(err)
		defer f.Close()
		size, err := f.Size()
		must(err)
		got := make([]byte, size)
		if _, err := f.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Fatalf("%s = %q, want %q", name, got, want)
		}
	}
	wantList := func(d string, want ...string) {
		t.Helper()
		got, err := fs.List(d)
		must(err)
		if !slices.Equal(got, want) {
			t.Fatalf("List(%s) = %q, want %q", d, got, want)
		}
	}

	must(fs.MkdirAll(dir))
	must(fs.MkdirAll(dir)) // already there
	wantList(dir)

	// Missing files and directories.
	for what, err := range map[string]error{
		"Open":              second(fs.Open(path("nope"))),
		"OpenRW":            second(fs.OpenRW(path("nope"))),
		"Create in missing": second(fs.Create(path("nodir/f"))),
		"List":              second(fs.List(path("nodir"))),
		"Remove":            fs.Remove(path("nope")),
		"Rename":            fs.Rename(path("nope"), path("x")),
		"SyncDir":           fs.SyncDir(path("nodir")),
	} {
		if !vfs.IsNotExist(err) {
			t.Errorf("%s of a missing name: err = %v, want not-exist", what, err)
		}
	}

	// Create, write, read, size.
	f, err := fs.Create(path("a"))
	must(err)
	if f.Name() != path("a") {
		t.Errorf("Name = %q, want %q", f.Name(), path("a"))
	}
	if n, err := f.WriteAt([]byte("hello"), 0); n != 5 || err != nil {
		t.Fatalf("WriteAt = %d, %v", n, err)
	}
	if _, err := f.WriteAt([]byte("world"), 10); err != nil { // leaves a zero gap
		t.Fatal(err)
	}
	if size, err := f.Size(); size != 15 || err != nil {
		t.Fatalf("Size = %d, %v; want 15", size, err)
	}
	buf := make([]byte, 15)
	if n, err := f.ReadAt(buf, 0); n != 15 || err != nil {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	if want := "hello\x00\x00\x00\x00\x00world"; string(buf) != want {
		t.Fatalf("contents %q, want %q", buf, want)
	}
	if n, err := f.ReadAt(buf[:10], 10); n != 5 || err != io.EOF || string(buf[:5]) != "world" {
		t.Fatalf("ReadAt across EOF = %d, %v, %q; want 5, EOF, world", n, err, buf[:5])
	}
	for _, off := range []int64{15, 100} {
		if n, err := f.ReadAt(buf, off); n != 0 || err != io.EOF {
			t.Fatalf("ReadAt(%d) = %d, %v; want 0, EOF", off, n, err)
		}
	}
	if n, err := f.ReadAt(nil, 3); n != 0 || err != nil {
		t.Fatalf("empty ReadAt = %d, %v", n, err)
	}
	if _, err := f.ReadAt(buf, -1); err == nil {
		t.Fatal("ReadAt at a negative offset succeeded")
	}

	// Truncate.
	must(f.Truncate(3))
	must(f.Truncate(8)) // grows with zeros, not with the old bytes
	must(f.Sync())
	must(f.Close())
	if err := f.Close(); err == nil {
		t.Error("second Close succeeded")
	}
	if _, err := f.WriteAt([]byte("x"), 0); err == nil {
		t.Error("WriteAt on a closed file succeeded")
	}
	wantContent("a", "hel\x00\x00\x00\x00\x00")

	// Read-only handles.
	r, err := fs.Open(path("a"))
	must(err)
	if _, err := r.WriteAt([]byte("x"), 0); err == nil {
		t.Error("WriteAt on a read-only file succeeded")
	}
	if err := r.Truncate(0); err == nil {
		t.Error("Truncate on a read-only file succeeded")
	}
	must(r.Close())

	// OpenRW keeps the contents; Create truncates.
	rw, err := fs.OpenRW(path("a"))
	must(err)
	_, err = rw.WriteAt([]byte("J"), 0)
	must(err)
	must(rw.Close())
	wantContent("a", "Jel\x00\x00\x00\x00\x00")
	c, err := fs.Create(path("a"))
	must(err)
	must(c.Close())
	wantContent("a", "")

	// Rename, replacing the target; Remove; List.
	writeFile(t, fs, path("b"), "bee")
	writeFile(t, fs, path("c"), "sea")
	must(fs.MkdirAll(path("sub/deeper")))
	wantList(dir, "a", "b", "c", "sub")
	must(fs.Rename(path("b"), path("c")))
	wantList(dir, "a", "c", "sub")
	wantContent("c", "bee")
	must(fs.Rename(path("c"), path("sub/c")))
	wantList(path("sub"), "c", "deeper")
	must(fs.Remove(path("a")))
	wantList(dir, "sub")
	if _, err := fs.Open(path("a")); !vfs.IsNotExist(err) {
		t.Errorf("Open of a removed file: %v", err)
	}
	if err := fs.MkdirAll(path("sub/c/x")); err == nil {
		t.Error("MkdirAll through a file succeeded")
	}
	if _, err := fs.List(path("sub/c")); err == nil {
		t.Error("List of a file succeeded")
	}
	must(fs.SyncDir(dir))

	// A removed file stays usable through an open handle.
	h, err := fs.OpenRW(path("sub/c"))
	must(err)
	must(fs.Remove(path("sub/c")))
	if _, err := h.WriteAt([]byte("!"), 3); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := h.ReadAt(got, 0); err != nil || string(got) != "bee!" {
		t.Fatalf("read after remove: %q, %v", got, err)
	}
	must(h.Close())
	wantList(path("sub"), "deeper")
}

func second[T any](_ T, err error) error { return err }

// writeFile creates name with the given contents and syncs it (not its
// directory).
func writeFile(t *testing.T, fs vfs.FS, name, data string) {
	t.Helper()
	f, err := fs.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(data), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, fs *vfs.MemFS, name string) string {
	t.Helper()
	b, err := fs.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func exists(t *testing.T, fs vfs.FS, name string) bool {
	t.Helper()
	f, err := fs.Open(name)
	if vfs.IsNotExist(err) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	return true
}

func TestMemPaths(t *testing.T) {
	fs := vfs.NewMem()
	if err := fs.MkdirAll("a/b"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, fs, "/a/./b/../b/f", "x")
	if got := readFile(t, fs, "a/b/f"); got != "x" {
		t.Fatalf("got %q", got)
	}
	if _, err := fs.Create("a/b"); err == nil {
		t.Error("Create over a directory succeeded")
	}
	if _, err := fs.Open("a"); err == nil {
		t.Error("Open of a directory succeeded")
	}
	if err := fs.Remove("a"); err == nil {
		t.Error("Remove of a non-empty directory succeeded")
	}
	if err := fs.Rename("a/b", "a/c"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Rename of a directory: %v", err)
	}
	var pe *os.PathError
	if _, err := fs.Open("a/nope"); !errors.As(err, &pe) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open of a missing file: %#v", err)
	}
}

func TestMemCrashSyncedSurvives(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 0))
		fs := vfs.NewMem()
		if err := fs.MkdirAll("/log"); err != nil {
			t.Fatal(err)
		}
		f, err := fs.Create("/log/seg")
		if err != nil {
			t.Fatal(err)
		}
		if err := fs.SyncDir("/log"); err != nil {
			t.Fatal(err)
		}
		var synced, all []byte
		for i := range 20 {
			rec := bytes.Repeat([]byte{byte('a' + i)}, 1+rng.IntN(30))
			if _, err := f.WriteAt(rec, int64(len(all))); err != nil {
				t.Fatal(err)
			}
			all = append(all, rec...)
			if rng.IntN(4) == 0 {
				if err := f.Sync(); err != nil {
					t.Fatal(err)
				}
				synced = slices.Clone(all)
			}
		}
		fs.Crash(rng)
		got := readFile(t, fs, "/log/seg")
		if len(got) < len(synced) || got[:len(synced)] != string(synced) {
			t.Fatalf("seed %d: synced data lost:\n got %q\nwant prefix %q", seed, got, synced)
		}
		if len(got) > len(all) {
			t.Fatalf("seed %d: file grew beyond what was written", seed)
		}
	}
}

// memOp mirrors an operation on a MemFS file, for the crash model check.
type memOp struct {
	trunc bool
	off   int64
	data  []byte
}

func (op memOp) apply(b []byte) []byte {
	b = slices.Clone(b)
	end := op.off
	if !op.trunc {
		end += int64(len(op.data))
	}
	if op.trunc || end > int64(len(b)) {
		b = append(b[:min(int64(len(b)), end)], make([]byte, max(0, end-int64(len(b))))...)
	}
	copy(b[op.off:], op.data)
	return b
}

// crashOutcome classifies got as a possible result of crashing a file with
// the given durable contents and unsynced ops: "clean" (durable contents plus
// some ops), "torn" (plus a torn prefix of the next write), "zeros" (plus a
// zero-filled prefix of the next write), or "" if it is impossible.
func crashOutcome(durable []byte, ops []memOp, got []byte) string {
	var states [][]byte
	s := durable
	for _, op := range ops {
		states = append(states, s)
		s = op.apply(s)
	}
	states = append(states, s)
	for _, s := range states {
		if bytes.Equal(s, got) {
			return "clean"
		}
	}
	for k, op := range ops {
		if op.trunc {
			continue
		}
		for m := 1; m <= len(op.data); m++ {
			if bytes.Equal(memOp{off: op.off, data: op.data[:m]}.apply(states[k]), got) {
				return "torn"
			}
			if bytes.Equal(memOp{off: op.off, data: make([]byte, m)}.apply(states[k]), got) {
				return "zeros"
			}
		}
	}
	return ""
}

// TestMemCrashModel checks, over many seeds and random histories of writes
// and truncations, that a crash leaves only the outcomes it documents, and
// that each kind of outcome happens.
func TestMemCrashModel(t *testing.T) {
	seen := map[string]int{}
	for seed := range uint64(2000) {
		rng := rand.New(rand.NewPCG(seed, 1))
		fs := vfs.NewMem()
		f, err := fs.Create("f")
		if err != nil {
			t.Fatal(err)
		}
		if err := fs.SyncDir("/"); err != nil {
			t.Fatal(err)
		}
		var durable, cur []byte
		var ops []memOp
		for range 1 + rng.IntN(12) {
			var op memOp
			switch off := rng.Int64N(int64(len(cur)) + 8); rng.IntN(6) {
			case 0:
				op = memOp{trunc: true, off: off}
				err = f.Truncate(off)
			case 1:
				if err := f.Sync(); err != nil {
					t.Fatal(err)
				}
				durable, ops = cur, nil
				continue
			default:
				op = memOp{off: off, data: make([]byte, 1+rng.IntN(16))}
				for i := range op.data {
					op.data[i] = byte(1 + rng.IntN(255)) // no zeros, to tell torn kinds apart
				}
				_, err = f.WriteAt(op.data, op.off)
			}
			if err != nil {
				t.Fatal(err)
			}
			ops = append(ops, op)
			cur = op.apply(cur)
		}
		if got := readFile(t, fs, "f"); got != string(cur) {
			t.Fatalf("seed %d: contents before crash %q, want %q", seed, got, cur)
		}
		fs.Crash(rng)
		got := []byte(readFile(t, fs, "f"))
		kind := crashOutcome(durable, ops, got)
		if kind == "" {
			t.Fatalf("seed %d: impossible contents after crash %q\ndurable %q\nops %v", seed, got, durable, ops)
		}
		seen[kind]++
		if len(ops) > 0 && bytes.Equal(got, cur) {
			seen["all"]++
		}
		if len(ops) > 0 && bytes.Equal(got, durable) {
			seen["none"]++
		}

		// Everything is durable now: a clean crash changes nothing.
		fs.CrashClean()
		if again := readFile(t, fs, "f"); again != string(got) {
			t.Fatalf("seed %d: second crash changed %q to %q", seed, got, again)
		}
	}
	t.Logf("outcomes: %v", seen)
	for _, kind := range []string{"clean", "torn", "zeros", "all", "none"} {
		if seen[kind] == 0 {
			t.Errorf("no %q outcome in any seed", kind)
		}
	}
}

func TestMemCrashReproducible(t *testing.T) {
	run := func() string {
		fs := vfs.NewMem()
		f, _ := fs.Create("f")
		fs.SyncDir("/")
		for i := range 50 {
			f.WriteAt([]byte(fmt.Sprintf("record %d;", i)), int64(i*10))
		}
		fs.Crash(rand.New(rand.NewPCG(7, 7)))
		return readFile(t, fs, "f")
	}
	if a, b := run(), run(); a != b {
		t.Fatalf("same seed, different outcomes:\n%q\n%q", a, b)
	}
}

func TestMemCrashNamespace(t *testing.T) {
	fs := vfs.NewMem()
	if err := fs.MkdirAll("/d/sub"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, fs, "/d/kept", "kept")
	writeFile(t, fs, "/d/removed", "removed")
	writeFile(t, fs, "/d/old", "renamed")
	if err := fs.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}

	writeFile(t, fs, "/d/new", "synced data, unsynced entry")
	writeFile(t, fs, "/d/sub/new", "synced data, unsynced entry")
	if err := fs.Remove("/d/removed"); err != nil {
		t.Fatal(err)
	}
	if err := fs.Rename("/d/old", "/d/renamed"); err != nil {
		t.Fatal(err)
	}
	fs.CrashClean()

	names, err := fs.List("/d")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"kept", "old", "removed", "sub"}; !slices.Equal(names, want) {
		t.Fatalf("after crash List = %q, want %q", names, want)
	}
	for name, want := range map[string]string{"/d/kept": "kept", "/d/removed": "removed", "/d/old": "renamed"} {
		if got := readFile(t, fs, name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if exists(t, fs, "/d/sub/new") {
		t.Error("/d/sub/new survived without SyncDir")
	}

	// The same changes, synced, survive.
	writeFile(t, fs, "/d/new", "new")
	if err := fs.Remove("/d/removed"); err != nil {
		t.Fatal(err)
	}
	if err := fs.Rename("/d/old", "/d/renamed"); err != nil {
		t.Fatal(err)
	}
	if err := fs.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	fs.Crash(rand.New(rand.NewPCG(1, 2)))
	names, _ = fs.List("/d")
	if want := []string{"kept", "new", "renamed", "sub"}; !slices.Equal(names, want) {
		t.Fatalf("after synced changes and crash List = %q, want %q", names, want)
	}
	if got := readFile(t, fs, "/d/renamed"); got != "renamed" {
		t.Errorf("renamed = %q", got)
	}
}

// TestMemCrashAtomicReplace checks the write-temp, sync, rename, sync-dir
// pattern: after a crash the target holds the old or the new contents, never
// a mix.
func TestMemCrashAtomicReplace(t *testing.T) {
	for seed := range uint64(100) {
		rng := rand.New(rand.NewPCG(seed, 3))
		fs := vfs.NewMem()
		writeFile(t, fs, "manifest", "old manifest")
		fs.SyncDir("/")
		writeFile(t, fs, "manifest.tmp", "new manifest")
		fs.Rename("manifest.tmp", "manifest")
		synced := rng.IntN(2) == 0
		if synced {
			fs.SyncDir("/")
		}
		fs.Crash(rng)
		want := "old manifest"
		if synced {
			want = "new manifest"
		}
		if got := readFile(t, fs, "manifest"); got != want {
			t.Fatalf("seed %d: manifest = %q, want %q", seed, got, want)
		}
		if exists(t, fs, "manifest.tmp") {
			t.Fatalf("seed %d: manifest.tmp came back", seed)
		}
	}
}

func TestMemCrashUnsyncedCreateVanishes(t *testing.T) {
	for seed := range uint64(50) {
		fs := vfs.NewMem()
		if err := fs.MkdirAll("/log"); err != nil {
			t.Fatal(err)
		}
		writeFile(t, fs, "/log/000001.seg", "data") // file synced, directory not
		fs.Crash(rand.New(rand.NewPCG(seed, 4)))
		if names, _ := fs.List("/log"); len(names) != 0 {
			t.Fatalf("seed %d: List = %q, want empty", seed, names)
		}
		if _, err := fs.Open("/log/000001.seg"); !vfs.IsNotExist(err) {
			t.Fatalf("seed %d: Open = %v, want not-exist", seed, err)
		}
	}
}

func TestMemCrashRemovedFileComesBack(t *testing.T) {
	fs := vfs.NewMem()
	writeFile(t, fs, "f", "durable")
	fs.SyncDir("/")
	f, err := fs.OpenRW("f")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("DURABLE"), 0) // unsynced
	fs.Remove("f")
	fs.CrashClean()
	if got := readFile(t, fs, "f"); got != "durable" {
		t.Fatalf("f = %q, want its durable contents", got)
	}
}

func TestMemMkdirAllIsDurable(t *testing.T) {
	fs := vfs.NewMem()
	if err := fs.MkdirAll("/a/b/c"); err != nil {
		t.Fatal(err)
	}
	// The entry of /a/f is not synced, but MkdirAll syncs /a, the parent of
	// the directory it creates.
	writeFile(t, fs, "/a/f", "f")
	if err := fs.MkdirAll("/a/d"); err != nil {
		t.Fatal(err)
	}
	fs.CrashClean()
	for _, dir := range []string{"/a/b/c", "/a/d"} {
		if _, err := fs.List(dir); err != nil {
			t.Errorf("%s lost: %v", dir, err)
		}
	}
	if !exists(t, fs, "/a/f") {
		t.Error("/a/f lost although MkdirAll synced its directory")
	}
}

func TestMemCrashKillsHandles(t *testing.T) {
	fs := vfs.NewMem()
	writeFile(t, fs, "f", "data")
	fs.SyncDir("/")
	f, err := fs.OpenRW("f")
	if err != nil {
		t.Fatal(err)
	}
	fs.CrashClean()
	buf := make([]byte, 4)
	for what, err := range map[string]error{
		"ReadAt":   second(f.ReadAt(buf, 0)),
		"WriteAt":  second(f.WriteAt(buf, 0)),
		"Truncate": f.Truncate(0),
		"Sync":     f.Sync(),
		"Size":     second(f.Size()),
		"Close":    f.Close(),
	} {
		if !errors.Is(err, vfs.ErrCrashed) {
			t.Errorf("%s after crash: %v, want ErrCrashed", what, err)
		}
	}
	// Fresh handles work.
	g, err := fs.OpenRW("f")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.ReadAt(buf, 0); err != nil || string(buf) != "data" {
		t.Fatalf("ReadAt = %q, %v", buf, err)
	}
	g.Close()
}

func TestMemCreateTruncationIsNotDurable(t *testing.T) {
	fs := vfs.NewMem()
	writeFile(t, fs, "f", "old")
	fs.SyncDir("/")
	if _, err := fs.Create("f"); err != nil {
		t.Fatal(err)
	}
	fs.CrashClean()
	if got := readFile(t, fs, "f"); got != "old" {
		t.Fatalf("f = %q, want the durable %q", got, "old")
	}
}

func TestMemCorrupt(t *testing.T) {
	fs := vfs.NewMem()
	writeFile(t, fs, "f", "abc")
	fs.SyncDir("/")
	f, _ := fs.Open("f")
	defer f.Close()
	if err := fs.Corrupt("f", 1, 0x20); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	if _, err := f.ReadAt(buf, 0); err != nil || string(buf) != "aBc" {
		t.Fatalf("through an open handle: %q, %v", buf, err)
	}
	fs.CrashClean()
	if got := readFile(t, fs, "f"); got != "aBc" {
		t.Fatalf("after crash: %q, want the corruption to be durable", got)
	}
	if err := fs.Corrupt("f", 3, 1); err == nil {
		t.Error("Corrupt past the end succeeded")
	}
	if err := fs.Corrupt("nope", 0, 1); !vfs.IsNotExist(err) {
		t.Errorf("Corrupt of a missing file: %v", err)
	}
}

func TestMemConcurrent(t *testing.T) {
	fs := vfs.NewMem()
	f, err := fs.Create("f")
	if err != nil {
		t.Fatal(err)
	}
	const workers, chunk, rounds = 4, 64, 200
	if err := f.Truncate(workers * chunk); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { // a writer per range
			p := bytes.Repeat([]byte{byte(w + 1)}, chunk)
			for range rounds {
				if _, err := f.WriteAt(p, int64(w*chunk)); err != nil {
					t.Error(err)
					return
				}
			}
		})
		wg.Go(func() { // and a reader of the same range
			buf := make([]byte, chunk)
			for range rounds {
				if _, err := f.ReadAt(buf, int64(w*chunk)); err != nil {
					t.Error(err)
					return
				}
				for _, b := range buf {
					if b != 0 && b != byte(w+1) {
						t.Errorf("range %d holds %d", w, b)
						return
					}
				}
			}
		})
	}
	wg.Go(func() {
		for range rounds {
			f.Size()
			fs.List("/")
		}
	})
	wg.Wait()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	fs.SyncDir("/")
	fs.Crash(rand.New(rand.NewPCG(1, 1)))
	got := readFile(t, fs, "f")
	for w := range workers {
		if want := string(bytes.Repeat([]byte{byte(w + 1)}, chunk)); got[w*chunk:(w+1)*chunk] != want {
			t.Fatalf("range %d lost after sync and crash", w)
		}
	}
}

// Mkdir creates a directory that a crash takes back until its parent is
// synced, and whose entries a crash takes back until it is synced itself.
func TestMemMkdirIsLazy(t *testing.T) {
	fs := vfs.NewMem()
	if err := fs.MkdirAll("/a"); err != nil {
		t.Fatal(err)
	}
	if err := vfs.Mkdir(fs, "/a/b"); err != nil {
		t.Fatal(err)
	}
	if err := vfs.Mkdir(fs, "/a/b"); err != nil {
		t.Fatalf("Mkdir of an existing directory: %v", err)
	}
	fs.CrashClean()
	if _, err := fs.List("/a/b"); !vfs.IsNotExist(err) {
		t.Fatalf("after a crash, an unsynced new directory: %v", err)
	}
	if err := vfs.Mkdir(fs, "/a/b"); err != nil {
		t.Fatal(err)
	}
	f, err := fs.Create("/a/b/f")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := fs.SyncDir("/a"); err != nil {
		t.Fatal(err)
	}
	fs.CrashClean()
	if names, err := fs.List("/a/b"); err != nil || len(names) != 0 {
		t.Fatalf("parent synced, directory not: %v %v, want it empty", names, err)
	}
	if err := vfs.Mkdir(fs, "/x/y"); !vfs.IsNotExist(err) {
		t.Fatalf("Mkdir without a parent: %v", err)
	}
}
