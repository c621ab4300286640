package seglog

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/vfs"
)

// crashFS is one process's view of a MemFS that loses power at its n-th
// mutating operation (write, truncate, sync, create, rename, remove, sync
// of a directory). A write, truncate, create, rename or remove is carried
// out and then the power fails, so it can be torn or lost; a sync is not
// carried out. After the crash every call fails, as the process is gone.
//
// One crash in three first makes every directory the process created files
// in durable, as a file system's own journal commit may do at any time:
// the log must not rely on a directory entry staying undurable (a segment
// file that appears while the segment before it lost its tail).
type crashFS struct {
	mem     *vfs.MemFS
	rng     *rand.Rand
	mu      sync.Mutex
	ops     int
	crashAt int // 0: never
	dead    bool
	dirs    map[string]bool // directories files were created in
}

var errPowerLoss = errors.New("test: power lost")

func (c *crashFS) do(apply bool, op func() error) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return errPowerLoss
	}
	c.ops++
	if c.crashAt > 0 && c.ops >= c.crashAt {
		if apply {
			op()
		}
		if c.rng.IntN(3) == 0 {
			for _, d := range slices.Sorted(maps.Keys(c.dirs)) {
				c.mem.SyncDir(d)
			}
		}
		c.mem.Crash(c.rng)
		c.dead = true
		return errPowerLoss
	}
	return op()
}

func (c *crashFS) alive() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return errPowerLoss
	}
	return nil
}

func (c *crashFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &crashFile{c: c, f: f}, nil
}

func (c *crashFS) Create(name string) (f vfs.File, err error) {
	err = c.do(true, func() error {
		if c.dirs == nil {
			c.dirs = map[string]bool{}
		}
		c.dirs[filepath.Dir(name)] = true
		f, err = c.mem.Create(name)
		return err
	})
	return c.wrap(f, err)
}
func (c *crashFS) OpenRW(name string) (vfs.File, error) {
	if err := c.alive(); err != nil {
		return nil, err
	}
	return c.wrap(c.mem.OpenRW(name))
}
func (c *crashFS) Open(name string) (vfs.File, error) {
	if err := c.alive(); err != nil {
		return nil, err
	}
	return c.wrap(c.mem.Open(name))
}
func (c *crashFS) Remove(name string) error {
	return c.do(true, func() error { return c.mem.Remove(name) })
}
func (c *crashFS) Rename(o, n string) error {
	return c.do(true, func() error { return c.mem.Rename(o, n) })
}
func (c *crashFS) MkdirAll(dir string) error {
	return c.do(false, func() error { return c.mem.MkdirAll(dir) })
}
func (c *crashFS) List(dir string) ([]string, error) {
	if err := c.alive(); err != nil {
		return nil, err
	}
	return c.mem.List(dir)
}
func (c *crashFS) SyncDir(dir string) error {
	return c.do(false, func() error { return c.mem.SyncDir(dir) })
}

type crashFile struct {
	c *crashFS
	f vfs.File
}

func (f *crashFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.c.alive(); err != nil {
		return 0, err
	}
	return f.f.ReadAt(p, off)
}
func (f *crashFile) WriteAt(p []byte, off int64) (n int, err error) {
	err = f.c.do(true, func() error { n, err = f.f.WriteAt(p, off); return err })
	return n, err
}
func (f *crashFile) Truncate(size int64) error {
	return f.c.do(true, func() error { return f.f.Truncate(size) })
}
func (f *crashFile) Sync() error { return f.c.do(false, f.f.Sync) }
func (f *crashFile) Size() (int64, error) {
	n, err := f.f.Size()
	if err != nil && f.c.alive() != nil {
		return n, errPowerLoss // the memory file system's ErrCrashed, as the power is out
	}
	return n, err
}
func (f *crashFile) Name() string { return f.f.Name() }

// Close is not a crash point, but after one it fails as every other
// operation does (a background seal may close a file after the power
// went out).
func (f *crashFile) Close() error {
	err := f.f.Close()
	if err != nil && f.c.alive() != nil {
		return errPowerLoss
	}
	return err
}

// crashModel is what the test knows: every batch written at each offset
// (acknowledged or not) and which were acknowledged.
type crashModel struct {
	written map[int64][]byte // base offset -> batch as appended
	acked   map[int64]bool
	// per producer: the last acknowledged batch, for retry checks
	lastAck map[int64]ackedBatch
	// durable is false under SyncNever: an acknowledgement promises nothing
	// across a crash, and only the prefix property is checked.
	durable bool
}

type ackedBatch struct {
	base int64
	b    []byte
}

// verify checks a freshly recovered log against the model: batches are
// contiguous and intact, every acknowledged batch is there unchanged, and
// every batch there is one that was written at that offset.
func (m *crashModel) verify(t *testing.T, l *Log, seed uint64) {
	t.Helper()
	got := readAll(t, l)
	for off := range m.acked {
		if m.durable && got[off] == nil {
			t.Fatalf("seed %d: acknowledged batch at %d lost (log %d..%d)", seed, off, l.StartOffset(), l.NextOffset())
		}
	}
	for off, b := range got {
		w := m.written[off]
		if w == nil || !sameRecords(w, b) {
			t.Fatalf("seed %d: batch at %d was never written there (written: %v)", seed, off, w != nil)
		}
	}
	// Offsets past the recovered end were never acknowledged; they may be
	// given again.
	end := l.NextOffset()
	for off := range m.written {
		if off >= end {
			if m.durable && m.acked[off] {
				t.Fatalf("seed %d: acknowledged offset %d is past the recovered end %d", seed, off, end)
			}
			delete(m.written, off)
			delete(m.acked, off)
		}
	}
}

// crashRuns returns how many seeds a crash test runs: n, or short under
// -short, or SEGLOG_CRASH_SEEDS if set (for a longer search:
// SEGLOG_CRASH_SEEDS=5000 go test -run Crash ./seglog/).
func crashRuns(t *testing.T, n, short int) int {
	if v := os.Getenv("SEGLOG_CRASH_SEEDS"); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k <= 0 {
			t.Fatalf("SEGLOG_CRASH_SEEDS=%q: want a positive number", v)
		}
		return k
	}
	if testing.Short() {
		return short
	}
	return n
}

func TestCrashConsistency(t *testing.T) {
	seeds := crashRuns(t, 300, 40)
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		crashRun(t, seed)
	}
}

func crashRun(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x5e45e))
	mem := vfs.NewMem()
	modes := []Durability{{Mode: SyncAlways}, {Mode: SyncNever}}
	dur := modes[0]
	if seed%5 == 0 {
		dur = modes[1] // acks are not durable: only the prefix property holds
	}
	opts := Options{
		Durability:         dur,
		SegmentBytes:       int64(6<<10 + rng.IntN(10<<10)), // above the largest batch (20 records of 200 bytes)
		IndexIntervalBytes: int64(64 + rng.IntN(1024)),
		CheckpointBytes:    int64(1<<10 + rng.IntN(16<<10)),
		PreallocateBytes:   crashPrealloc(seed),
		Logger:             quiet,
	}
	m := &crashModel{written: map[int64][]byte{}, acked: map[int64]bool{}, lastAck: map[int64]ackedBatch{},
		durable: dur.Mode == SyncAlways}
	for cycle := 0; cycle < 4; cycle++ {
		// The crash may come from the log's background goroutine: give the
		// file system its own generator, used only under its lock.
		cfs := &crashFS{mem: mem, rng: rand.New(rand.NewPCG(rng.Uint64(), 1)), crashAt: 1 + rng.IntN(120)}
		o := opts
		o.FS = cfs
		if seed%2 == 1 {
			// A cache of one or two open files: segment files are closed
			// and reopened all the time, around rolls, seals and syncs.
			o.Files = NewFiles(1 + int(seed/2%2))
		}
		l, err := Open("/p0", o)
		if err != nil {
			if errors.Is(err, errPowerLoss) {
				continue // crashed while recovering: recover again
			}
			t.Fatalf("seed %d cycle %d: open after crash: %v", seed, cycle, err)
		}
		if cycle > 0 {
			m.verify(t, l, seed)
			if dur.Mode == SyncAlways {
				// Retrying each producer's last acknowledged batch returns its
				// original offset: the idempotence state survived the crash.
				for pid, a := range m.lastAck {
					if m.acked[a.base] {
						base, err := l.Append(bytes.Clone(a.b))
						if err != nil && errors.Is(err, errPowerLoss) {
							break
						}
						if err != nil || base != a.base {
							t.Fatalf("seed %d: retry of producer %d's last batch: base %d err %v, want %d", seed, pid, base, err, a.base)
						}
					}
				}
			}
		}
		crashWorkload(t, rng, l, m, int64(100+cycle), seed)
		l.Close() // the process is gone; this only stops the goroutine
		if err := cfs.alive(); err == nil {
			// The workload ended without a crash: cut the power now.
			mem.Crash(rng)
		}
	}
	o := opts
	o.FS = mem
	l, err := Open("/p0", o)
	if err != nil {
		t.Fatalf("seed %d: final open: %v", seed, err)
	}
	m.verify(t, l, seed)
	l.Close()
}

// crashWorkload appends, retries, truncates and reopens until the power
// fails (or 150 steps pass), keeping the model up to date.
func crashWorkload(t *testing.T, rng *rand.Rand, l *Log, m *crashModel, pid int64, seed uint64) {
	seq := int32(0)
	var last []byte
	for step := 0; step < 150; step++ {
		switch r := rng.IntN(100); {
		case r < 3 && len(m.acked) > 0:
			// Truncate to a random acknowledged batch.
			var target int64 = -1
			for off := range m.acked {
				if off >= l.StartOffset() && (target < 0 || rng.IntN(3) == 0) {
					target = off
				}
			}
			if target < 0 {
				continue
			}
			for off := range m.acked {
				if off >= target {
					delete(m.acked, off)
				}
			}
			for p, a := range m.lastAck {
				if a.base >= target {
					delete(m.lastAck, p)
				}
			}
			if err := l.Truncate(target); err != nil {
				if errors.Is(err, errPowerLoss) {
					return
				}
				t.Fatalf("seed %d: truncate to %d: %v", seed, target, err)
			}
			for off := range m.written {
				if off >= target {
					delete(m.written, off)
				}
			}
			// The producer's batches past the cut are gone; continue after
			// its last remaining batch, or as a new producer.
			pid += 1000
			seq, last = 0, nil
		case r < 8 && last != nil:
			// Retry the last batch: same offset, nothing written.
			base, err := l.Append(bytes.Clone(last))
			if err != nil {
				if errors.Is(err, errPowerLoss) {
					return
				}
				t.Fatalf("seed %d: retry: %v", seed, err)
			}
			if a := m.lastAck[pid]; base != a.base {
				t.Fatalf("seed %d: retry returned %d, original %d", seed, base, a.base)
			}
		default:
			idem := rng.IntN(3) > 0
			n := 1 + rng.IntN(20)
			p, s := int64(-1), int32(-1)
			if idem {
				p, s = pid, seq
			}
			b := mkBatch(fmt.Sprintf("%d/%d", seed, step), n, 1+rng.IntN(200), p, s)
			orig := bytes.Clone(b)
			next := l.NextOffset()
			m.written[next] = orig // written, perhaps, even if Append fails
			base, err := l.Append(b)
			if err != nil {
				if errors.Is(err, errPowerLoss) {
					return
				}
				t.Fatalf("seed %d: append: %v", seed, err)
			}
			if base != next {
				t.Fatalf("seed %d: append got base %d, log end was %d", seed, base, next)
			}
			if m.acked[base] {
				t.Fatalf("seed %d: offset %d acknowledged twice", seed, base)
			}
			m.acked[base] = true
			if idem {
				seq += int32(n)
				last = orig
				m.lastAck[pid] = ackedBatch{base: base, b: orig}
			}
		}
	}
}

// A sanity check of the harness: with power lost at every possible
// operation of a short run, every acknowledged batch survives.
func TestCrashAtEveryOperation(t *testing.T) {
	for at := 1; at < 80; at++ {
		mem := vfs.NewMem()
		rng := rand.New(rand.NewPCG(uint64(at), 1))
		cfs := &crashFS{mem: mem, rng: rand.New(rand.NewPCG(uint64(at), 2)), crashAt: at}
		o := Options{FS: cfs, SegmentBytes: 4 << 10, CheckpointBytes: 2 << 10, IndexIntervalBytes: 128, PreallocateBytes: crashPrealloc(uint64(at)), Logger: quiet}
		acked := map[int64][]byte{}
		if l, err := Open("/x", o); err == nil {
			for i := 0; i < 40; i++ {
				b := mkBatch(fmt.Sprint(i), 5, 60, 1, int32(5*i))
				orig := bytes.Clone(b)
				base, err := l.Append(b)
				if err != nil {
					if !errors.Is(err, errPowerLoss) {
						t.Fatalf("crash at %d: append: %v", at, err)
					}
					break
				}
				acked[base] = orig
			}
			l.Close()
		}
		if cfs.alive() == nil {
			mem.Crash(rng)
		}
		o.FS = mem
		l, err := Open("/x", o)
		if err != nil {
			t.Fatalf("crash at op %d: reopen: %v", at, err)
		}
		got := readAll(t, l)
		for off, b := range acked {
			if !sameRecords(got[off], b) {
				t.Fatalf("crash at op %d: acknowledged batch %d lost or changed", at, off)
			}
		}
		// Offsets continue after what survived, and the producer's next
		// sequence is accepted.
		if _, err := l.Append(mkBatch("after", 1, 10, -1, -1)); err != nil {
			t.Fatalf("crash at op %d: append after recovery: %v", at, err)
		}
		l.Close()
	}
}

var _ = batch.HeaderSize

// TestCrashConcurrentAppenders cuts the power while several appenders share
// group commits: whatever any of them saw acknowledged survives, and no
// offset was given twice.
func TestCrashConcurrentAppenders(t *testing.T) {
	runs := crashRuns(t, 60, 10)
	for run := 0; run < runs; run++ {
		rng := rand.New(rand.NewPCG(uint64(run), 3))
		mem := vfs.NewMem()
		cfs := &crashFS{mem: mem, rng: rand.New(rand.NewPCG(uint64(run), 4)), crashAt: 20 + rng.IntN(300)}
		o := Options{FS: cfs, SegmentBytes: 8 << 10, CheckpointBytes: 4 << 10, IndexIntervalBytes: 200, PreallocateBytes: crashPrealloc(uint64(run)), Logger: quiet}
		if run%2 == 1 {
			o.Files = NewFiles(1) // every segment file closed once idle and clean
		}
		l, err := Open("/g", o)
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		acked := map[int64][]byte{}
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 200; i++ {
					b := mkBatch(fmt.Sprintf("%d/%d/%d", run, w, i), 1+i%4, 50, int64(w), seqFor(i))
					orig := bytes.Clone(b)
					base, err := l.Append(b)
					if err != nil {
						if !errors.Is(err, errPowerLoss) {
							t.Errorf("run %d: append: %v", run, err)
						}
						return
					}
					mu.Lock()
					if acked[base] != nil {
						t.Errorf("run %d: offset %d acknowledged twice", run, base)
					}
					acked[base] = orig
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		l.Close()
		if cfs.alive() == nil {
			mem.Crash(rng)
		}
		o.FS = mem
		l = openT(t, "/g", o)
		got := readAll(t, l)
		for off, b := range acked {
			if !sameRecords(got[off], b) {
				t.Fatalf("run %d: acknowledged batch %d lost or changed after the crash", run, off)
			}
		}
		l.Close()
	}
}

// seqFor is the base sequence of the i-th batch when batch j holds 1+j%4
// records.
func seqFor(i int) int32 {
	var s int32
	for j := 0; j < i; j++ {
		s += int32(1 + j%4)
	}
	return s
}

// crashPrealloc varies preallocation with the seed: whole segments (1 MiB,
// past the small segments here), extension in small chunks ahead of the
// end, or none (the default).
func crashPrealloc(seed uint64) int64 {
	switch seed % 3 {
	case 1:
		return int64(256 + seed%2048)
	case 2:
		return 0 // off, the default
	}
	return 1 << 20 // past the small segments of these tests: whole segments
}
