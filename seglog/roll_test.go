package seglog

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sensehq/sense/vfs"
)

// Tests of rolling: the seal of a rolled segment (its fdatasync, the new
// segment's directory entry, its index files, the checkpoint) runs without
// the append lock, and nothing written after the roll is acknowledged before
// the seal is durable.

// gateFS wraps an FS. Once armed, every File.Sync and SyncDir that the
// armed predicate selects blocks until the gate is opened; each one that
// blocks is reported on blocked first. After kill every call through it
// fails, as for a process that lost the power (the handles on a crashed
// MemFS fail by themselves).
type gateFS struct {
	vfs.FS
	blocked chan string // "sync <name>" or "syncdir <dir>"

	mu      sync.Mutex
	match   func(op, name string) bool
	release chan struct{}
	dead    bool
}

func (g *gateFS) kill() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.dead = true
}

func (g *gateFS) alive() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.dead {
		return errPowerLoss
	}
	return nil
}

func newGateFS(inner vfs.FS) *gateFS {
	return &gateFS{FS: inner, blocked: make(chan string, 64)}
}

// arm makes the calls selected by match block, from now on.
func (g *gateFS) arm(match func(op, name string) bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.match, g.release = match, make(chan struct{})
}

// open releases the blocked calls and disarms the gate.
func (g *gateFS) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.release != nil {
		close(g.release)
	}
	g.match, g.release = nil, nil
}

func (g *gateFS) pass(op, name string) {
	g.mu.Lock()
	match, release := g.match, g.release
	g.mu.Unlock()
	if match == nil || !match(op, name) {
		return
	}
	g.blocked <- op + " " + name
	<-release
}

// waitBlocked waits until a call blocks at the gate and returns it.
func (g *gateFS) waitBlocked(t *testing.T) string {
	t.Helper()
	select {
	case c := <-g.blocked:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no call blocked at the gate")
		return ""
	}
}

func (g *gateFS) Create(name string) (vfs.File, error) { return g.wrap(name, g.FS.Create) }
func (g *gateFS) OpenRW(name string) (vfs.File, error) { return g.wrap(name, g.FS.OpenRW) }
func (g *gateFS) Open(name string) (vfs.File, error)   { return g.wrap(name, g.FS.Open) }

func (g *gateFS) wrap(name string, open func(string) (vfs.File, error)) (vfs.File, error) {
	if err := g.alive(); err != nil {
		return nil, err
	}
	f, err := open(name)
	if err != nil {
		return nil, err
	}
	return &gateFile{File: f, g: g}, nil
}

func (g *gateFS) Remove(name string) error {
	if err := g.alive(); err != nil {
		return err
	}
	return g.FS.Remove(name)
}

func (g *gateFS) Rename(oldname, newname string) error {
	if err := g.alive(); err != nil {
		return err
	}
	return g.FS.Rename(oldname, newname)
}

func (g *gateFS) MkdirAll(dir string) error {
	if err := g.alive(); err != nil {
		return err
	}
	return g.FS.MkdirAll(dir)
}

func (g *gateFS) SyncDir(dir string) error {
	g.pass("syncdir", dir)
	if err := g.alive(); err != nil {
		return err
	}
	return g.FS.SyncDir(dir)
}

type gateFile struct {
	vfs.File
	g *gateFS
}

func (f *gateFile) Sync() error {
	f.g.pass("sync", f.File.Name())
	if err := f.g.alive(); err != nil {
		return err
	}
	return f.File.Sync()
}

// settle finishes the pending seal, as the background goroutine does.
func settle(l *Log) error {
	l.ckptMu.Lock()
	defer l.ckptMu.Unlock()
	return l.finishSeal()
}

// sealScene is a log whose first roll's seal is blocked at a gate.
type sealScene struct {
	l     *Log
	g     *gateFS
	mem   *vfs.MemFS
	acked map[int64][]byte // acknowledged before the roll, all in segment 0
	// b was written to segment 0 just before the roll, c started the new
	// segment (its append rolled), d followed it; none is acknowledged.
	b, c, d    Pending
	wrote      map[int64][]byte // b, c and d by base offset
	ackedEnd   int64            // the high watermark before the roll
	rolledBase int64            // the new segment's base offset (c's)
	holding    bool             // the test holds l.ckptMu
}

// unhold releases l.ckptMu if the scene holds it.
func (sc *sealScene) unhold() {
	if sc.holding {
		sc.holding = false
		sc.l.ckptMu.Unlock()
	}
}

const sealDir = "/r"

var seg0Name = filepath.Join(sealDir, segmentName(0, logSuffix))

// blockOldSync selects the fdatasync of segment 0, the one being sealed.
func blockOldSync(op, name string) bool { return op == "sync" && name == seg0Name }

// blockDirSync selects the sync of the log's directory.
func blockDirSync(op, name string) bool { return op == "syncdir" && name == sealDir }

// newSealScene fills segment 0 of a 4 KiB-segment log with acknowledged
// batches, arms the gate with match, writes one more batch there (b) and
// two that roll to a new segment (c, d), each with AppendAsync, checking
// that they return although the seal cannot go on.
//
// Normally the background goroutine starts the seal at once, and the scene
// waits until it is blocked at the gate before writing d. With waiterSeals
// the scene holds ckptMu, so the background goroutine cannot start it: the
// first Wait's group commit must then do the seal's durable half itself.
func newSealScene(t *testing.T, o Options, match func(op, name string) bool, waiterSeals bool) *sealScene {
	t.Helper()
	sc := &sealScene{mem: vfs.NewMem(), acked: map[int64][]byte{}, wrote: map[int64][]byte{}}
	sc.g = newGateFS(sc.mem)
	o.FS, o.SegmentBytes, o.Logger = sc.g, 4<<10, quiet
	sc.l = openT(t, sealDir, o)
	size := int64(len(mkBatch("x", 2, 100, -1, -1)))
	n := 4<<10/size - 1 // leaves room for b, not for c
	for i := range n {
		b := mkBatch(fmt.Sprint("acked", i), 2, 100, -1, -1)
		base, err := sc.l.Append(b)
		if err != nil {
			t.Fatal(err)
		}
		sc.acked[base] = b
	}
	sc.ackedEnd = sc.l.HighWatermark()
	sc.g.arm(match)
	if waiterSeals {
		sc.l.ckptMu.Lock()
		sc.holding = true
	}
	async := func(tag string) Pending {
		t.Helper()
		b := mkBatch(tag, 2, 100, -1, -1)
		done := make(chan struct{})
		var p Pending
		var err error
		go func() {
			defer close(done)
			p, err = sc.l.AppendAsync(b, false)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("AppendAsync of %s blocked while the seal waits at the gate", tag)
		}
		if err != nil {
			t.Fatalf("AppendAsync of %s: %v", tag, err)
		}
		sc.wrote[p.base] = b
		return p
	}
	sc.b = async("b")
	if sc.l.Segments() != 1 {
		t.Fatalf("%d segments before the roll", sc.l.Segments())
	}
	sc.c = async("c")
	if sc.l.Segments() != 2 {
		t.Fatalf("%d segments after the roll, want 2", sc.l.Segments())
	}
	sc.rolledBase = sc.c.base
	if !waiterSeals {
		// The background goroutine blocks at the gate; an append to the
		// new segment must still get through.
		sc.g.waitBlocked(t)
	}
	sc.d = async("d")
	t.Cleanup(func() {
		sc.unhold()
		sc.g.open()
		sc.l.Close()
	})
	return sc
}

// waitAll starts Wait on b, c and d and returns a channel that receives
// each result.
func (sc *sealScene) waitAll() <-chan error {
	res := make(chan error, 3)
	for _, p := range []Pending{sc.b, sc.c, sc.d} {
		go func() {
			base, err := p.Wait()
			if err == nil && base != p.base {
				err = fmt.Errorf("Wait returned base %d, want %d", base, p.base)
			}
			res <- err
		}()
	}
	return res
}

// TestRollDoesNotWaitForSeal: while the rolled segment's fdatasync, or the
// directory sync that makes the new segment's entry durable, is blocked,
// appends to the new segment are written (AppendAsync returns), but none of
// them, nor the last batch of the rolled segment, is acknowledged or
// visible to readers until the blocked sync completes. Readers of the
// acknowledged part keep working meanwhile.
func TestRollDoesNotWaitForSeal(t *testing.T) {
	for _, tc := range []struct {
		name        string
		match       func(op, name string) bool
		waiterSeals bool
	}{
		{"segment-fdatasync/by=background", blockOldSync, false},
		{"segment-fdatasync/by=group-commit", blockOldSync, true},
		{"directory-sync/by=background", blockDirSync, false},
		{"directory-sync/by=group-commit", blockDirSync, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := newSealScene(t, Options{}, tc.match, tc.waiterSeals)
			l := sc.l
			res := sc.waitAll()
			if tc.waiterSeals {
				select {
				case <-sc.g.blocked:
				case err := <-res:
					t.Fatalf("a Wait returned (%v) without running the seal's sync", err)
				case <-time.After(10 * time.Second):
					t.Fatal("no group commit ran the seal's sync")
				}
			}
			select {
			case err := <-res:
				t.Fatalf("a Wait returned (%v) while the seal's sync is blocked", err)
			case <-time.After(100 * time.Millisecond):
			}
			if hw := l.HighWatermark(); hw != sc.ackedEnd {
				t.Fatalf("high watermark %d while the seal is blocked, want %d", hw, sc.ackedEnd)
			}
			// Readers see the acknowledged part, and only that.
			if got := readAll(t, l); len(got) != len(sc.acked) {
				t.Fatalf("read %d batches while the seal is blocked, want %d", len(got), len(sc.acked))
			}
			if _, err := l.Read(nil, sc.c.base, 1<<20); !errors.Is(err, ErrOffsetOutOfRange) {
				t.Fatalf("read past the high watermark: %v", err)
			}
			if s, err := l.Locate(0, 1<<20); err != nil || s.Len == 0 {
				t.Fatalf("Locate(0): %+v %v", s, err)
			} else {
				s.Release()
			}
			if off, err := l.OffsetForTime(0); err != nil || off != 0 {
				t.Fatalf("OffsetForTime(0) = %d, %v", off, err)
			}
			names, _ := sc.mem.List(sealDir)
			pending := segmentName(sc.rolledBase, pendingSuffix)
			if strings.HasPrefix(tc.name, "segment-fdatasync") && !slices.Contains(names, pending) {
				t.Fatalf("directory holds %v; want the new segment under its pending name %s", names, pending)
			}

			sc.unhold()
			sc.g.open()
			for range 3 {
				if err := <-res; err != nil {
					t.Fatal(err)
				}
			}
			if hw, want := l.HighWatermark(), sc.d.end; hw < want {
				t.Fatalf("high watermark %d after the seal, want at least %d", hw, want)
			}
			names, _ = sc.mem.List(sealDir)
			if slices.Contains(names, pending) || !slices.Contains(names, segmentName(sc.rolledBase, logSuffix)) {
				t.Fatalf("directory holds %v after the seal; want %s renamed", names, pending)
			}
			// What was acknowledged survives a crash that loses everything
			// unsynced, the new segment's directory entry included. (The
			// seal is finished first so that the crash hits no file
			// operation of it that could tell the old process is gone.)
			if err := settle(l); err != nil {
				t.Fatal(err)
			}
			sc.g.kill()
			sc.mem.CrashClean()
			l2 := openT(t, sealDir, Options{FS: sc.mem, SegmentBytes: 4 << 10, Logger: quiet})
			defer l2.Close()
			got := readAll(t, l2)
			for off, b := range sc.acked {
				if !sameRecords(got[off], b) {
					t.Fatalf("batch %d acknowledged before the roll lost", off)
				}
			}
			for off, b := range sc.wrote {
				if !sameRecords(got[off], b) {
					t.Fatalf("batch %d acknowledged across the roll lost", off)
				}
			}
		})
	}
}

// TestCrashDuringSeal cuts the power while the seal is blocked, after a
// journal commit has made the directory durable (so the new segment's file
// survives although the rolled segment may have lost its tail): recovery
// removes the unfinished segment, cuts the torn tail, and keeps every
// acknowledged batch.
func TestCrashDuringSeal(t *testing.T) {
	for name, match := range map[string]func(op, name string) bool{
		"segment-fdatasync": blockOldSync,
		"directory-sync":    blockDirSync,
	} {
		for seed := range uint64(20) {
			t.Run(fmt.Sprintf("%s/seed=%d", name, seed), func(t *testing.T) {
				waiterSeals := seed%4 == 1
				sc := newSealScene(t, Options{}, match, waiterSeals)
				if waiterSeals {
					sc.waitAll()
					sc.g.waitBlocked(t)
				}
				if seed%2 == 0 {
					sc.mem.SyncDir(sealDir)
				}
				sc.mem.Crash(rand.New(rand.NewPCG(seed, 7)))
				sc.g.kill()
				sc.g.open() // the blocked sync now fails: the process is gone
				sc.unhold()
				sc.l.Close()

				l := openT(t, sealDir, Options{FS: sc.mem, SegmentBytes: 4 << 10, Logger: quiet})
				defer l.Close()
				names, _ := sc.mem.List(sealDir)
				for _, n := range names {
					if strings.HasSuffix(n, pendingSuffix) {
						t.Fatalf("recovery left %s", n)
					}
				}
				got := readAll(t, l)
				for off, b := range sc.acked {
					if !sameRecords(got[off], b) {
						t.Fatalf("acknowledged batch %d lost", off)
					}
				}
				for off, b := range got {
					w := sc.acked[off]
					if w == nil {
						w = sc.wrote[off]
					}
					if w == nil || !sameRecords(w, b) {
						t.Fatalf("batch %d after recovery was never written there", off)
					}
				}
				if name == "segment-fdatasync" && len(got) > len(sc.acked)+1 {
					t.Fatalf("%d batches survived; none of the new segment's may when the rolled one was not synced", len(got))
				}
				if _, err := l.Append(mkBatch("after", 2, 100, -1, -1)); err != nil {
					t.Fatalf("append after recovery: %v", err)
				}
			})
		}
	}
}

// TestSealErrorIsFatal: an error in any step of a seal, which runs in the
// background, fails the log as a failed append-path fsync does: the batches
// written after the roll are never acknowledged unless the seal was durable,
// every later append fails, and nothing is retried.
func TestSealErrorIsFatal(t *testing.T) {
	isSeg0 := func(n string) bool { return n == seg0Name }
	cases := []struct {
		name    string
		inject  func(*vfs.FaultFS)
		durable bool // the seal's durable half succeeds: c and d are acknowledged
	}{
		{"segment-fdatasync", func(f *vfs.FaultFS) { f.SetMatch(isSeg0); f.FailSync(0, syscall.EIO) }, false},
		{"directory-sync", func(f *vfs.FaultFS) { f.FailSyncDir(0, syscall.EIO) }, false},
		{"index-write", func(f *vfs.FaultFS) {
			f.SetMatch(func(n string) bool { return filepath.Ext(n) == indexSuffix })
			f.FailWrite(0, syscall.EIO)
		}, true},
		{"index-fsync", func(f *vfs.FaultFS) {
			f.SetMatch(func(n string) bool { return filepath.Ext(n) == timeIndexSuffix })
			f.FailSync(0, syscall.EIO)
		}, true},
		{"checkpoint-write", func(f *vfs.FaultFS) {
			f.SetMatch(func(n string) bool { return filepath.Base(n) == checkpointTmp })
			f.FailWrite(0, syscall.EIO)
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewMem()
			ffs := vfs.NewFault(mem)
			o := Options{FS: ffs, SegmentBytes: 4 << 10, Logger: quiet}
			l := openT(t, sealDir, o)
			defer l.Close()
			acked := map[int64][]byte{}
			size := int64(len(mkBatch("x", 2, 100, -1, -1)))
			for i := range 4<<10/size - 1 {
				b := mkBatch(fmt.Sprint(i), 2, 100, -1, -1)
				base, err := l.Append(b)
				if err != nil {
					t.Fatal(err)
				}
				acked[base] = b
			}
			tc.inject(ffs)
			var ps []Pending
			for _, tag := range []string{"b", "c", "d"} {
				p, err := l.AppendAsync(mkBatch(tag, 2, 100, -1, -1), false)
				if tag == "d" && errors.Is(err, ErrFailed) {
					break // the background seal failed already
				}
				if err != nil {
					t.Fatalf("AppendAsync %s: %v", tag, err)
				}
				ps = append(ps, p)
			}
			if l.Segments() != 2 {
				t.Fatalf("%d segments, want 2 after the roll", l.Segments())
			}
			for i, p := range ps {
				_, err := p.Wait()
				if !tc.durable && !errors.Is(err, ErrFailed) {
					t.Fatalf("Wait of batch %d after a failed seal: %v, want ErrFailed", i, err)
				}
			}
			// Finish the seal as the background goroutine would, if it has
			// not yet: the error is in the log.
			if err := settle(l); !errors.Is(err, ErrFailed) || !errors.Is(err, syscall.EIO) {
				t.Fatalf("seal: %v, want ErrFailed wrapping EIO", err)
			}
			ffs.Reset()
			if _, err := l.Append(mkBatch("later", 2, 100, -1, -1)); !errors.Is(err, ErrFailed) {
				t.Fatalf("append after a failed seal: %v, want ErrFailed", err)
			}
			if err := l.Sync(); !errors.Is(err, ErrFailed) {
				t.Fatalf("sync after a failed seal: %v, want ErrFailed", err)
			}
			l.Close()
			mem.CrashClean()
			l2 := openT(t, sealDir, Options{FS: mem, SegmentBytes: 4 << 10, Logger: quiet})
			defer l2.Close()
			got := readAll(t, l2)
			for off := range acked {
				if got[off] == nil {
					t.Fatalf("acknowledged batch %d lost", off)
				}
			}
		})
	}
}

// TestSealConcurrentOps: retention spares the segment being sealed,
// Truncate and Close wait for the seal, and all of them work once it is
// done.
func TestSealConcurrentOps(t *testing.T) {
	t.Run("retention", func(t *testing.T) {
		sc := newSealScene(t, Options{RetentionBytes: 1}, blockOldSync, false)
		if n, err := sc.l.EnforceRetention(); err != nil || n != 0 {
			t.Fatalf("retention while the segment is being sealed deleted %d: %v", n, err)
		}
		if _, err := sc.l.Read(nil, 0, 1<<20); err != nil {
			t.Fatalf("read of the segment being sealed: %v", err)
		}
		sc.g.open()
		if _, err := sc.d.Wait(); err != nil {
			t.Fatal(err)
		}
		if err := settle(sc.l); err != nil {
			t.Fatal(err)
		}
		sc.l.EnforceRetention() // the background goroutine may have done it
		if sc.l.StartOffset() != sc.rolledBase || sc.l.Segments() != 1 {
			t.Fatalf("after the seal: start %d, %d segments; want %d, 1", sc.l.StartOffset(), sc.l.Segments(), sc.rolledBase)
		}
	})
	for _, op := range []string{"truncate", "close"} {
		t.Run(op, func(t *testing.T) {
			sc := newSealScene(t, Options{}, blockOldSync, false)
			done := make(chan error, 1)
			go func() {
				if op == "truncate" {
					done <- sc.l.Truncate(sc.c.base)
				} else {
					done <- sc.l.Close()
				}
			}()
			select {
			case err := <-done:
				t.Fatalf("%s returned (%v) while the seal is blocked", op, err)
			case <-time.After(50 * time.Millisecond):
			}
			sc.g.open()
			if err := <-done; err != nil {
				t.Fatalf("%s: %v", op, err)
			}
			if op == "close" {
				sc.l = openT(t, sealDir, Options{FS: sc.mem, SegmentBytes: 4 << 10})
			} else if _, err := sc.d.Wait(); !errors.Is(err, ErrTruncated) {
				t.Fatalf("Wait of a truncated batch: %v, want ErrTruncated", err)
			}
			want := sc.d.end
			if op == "truncate" {
				want = sc.c.base
			}
			if sc.l.NextOffset() != want || sc.l.HighWatermark() != want {
				t.Fatalf("after %s: next %d, high watermark %d; want %d", op, sc.l.NextOffset(), sc.l.HighWatermark(), want)
			}
			got := readAll(t, sc.l)
			if _, ok := got[sc.b.base]; !ok {
				t.Fatalf("after %s: batch b (%d) missing", op, sc.b.base)
			}
		})
	}
}
