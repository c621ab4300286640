package movelog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"

	"github.com/sensehq/sense/meta"
	"github.com/sensehq/sense/vfs"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const path = "/data/moves.log"

func openT(t testing.TB, fs vfs.FS) *Log {
	t.Helper()
	l, err := Open(fs, path, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func newMem(t testing.TB) *vfs.MemFS {
	t.Helper()
	mem := vfs.NewMem()
	if err := mem.MkdirAll("/data"); err != nil {
		t.Fatal(err)
	}
	return mem
}

func step(source string, from, to int64) meta.Move {
	pipeline, _, _ := strings.Cut(source, "/")
	return meta.Move{Source: source, Pipeline: pipeline, Hub: "tangier", From: from, To: to, Reason: "policy",
		Routes: []meta.Route{{Dest: 3, DestHub: "dakhla", Jurisdiction: "MA", Start: 100}}}
}

func done(m meta.Move, records int64) meta.Move {
	m.Routes = []meta.Route{{Dest: 3, DestHub: "dakhla", Jurisdiction: "MA", Start: 100, DestFrom: 100, DestTo: 100 + records, Records: records, Checksum: 7}}
	m.Records = records
	return m
}

// TestReplay: steps planned and done are there after a restart, producer
// ids go on from the last plan, and a step that does not follow the last
// one of its source is refused.
func TestReplay(t *testing.T) {
	mem := newMem(t)
	l := openT(t, mem)
	if _, ok := l.Move("payments/tangier/0"); ok || len(l.Moves()) != 0 {
		t.Fatal("a new log holds steps")
	}
	if _, err := mem.ReadFile(path); !vfs.IsNotExist(err) {
		t.Fatalf("the file exists before any step: %v", err)
	}
	a, err := l.Plan(step("payments/tangier/0", 0, 10))
	if err != nil {
		t.Fatal(err)
	}
	if a.PID != meta.MovePIDBase || a.Done || a.Planned == 0 {
		t.Fatalf("first plan: %+v", a)
	}
	if _, err := l.Plan(step("payments/tangier/0", 10, 20)); !errors.Is(err, meta.ErrInvalid) {
		t.Fatalf("a plan while the last step is under way: %v, want meta.ErrInvalid", err)
	}
	if err := l.Done(done(step("payments/tangier/0", 0, 9), 9)); !errors.Is(err, meta.ErrInvalid) {
		t.Fatalf("done of a step never planned: %v, want meta.ErrInvalid", err)
	}
	if err := l.Done(done(a, 10)); err != nil {
		t.Fatal(err)
	}
	b, err := l.Plan(step("payments/tangier/0", 10, 20))
	if err != nil {
		t.Fatal(err)
	}
	c, err := l.Plan(step("payments/tangier/3", 0, 4))
	if err != nil {
		t.Fatal(err)
	}
	if b.PID != a.PID+1 || c.PID != a.PID+2 {
		t.Fatalf("producer ids %d, %d, %d; want consecutive", a.PID, b.PID, c.PID)
	}
	l.Close()
	mem.CrashClean() // every step was recorded durably
	l = openT(t, mem)
	defer l.Close()
	if m, ok := l.Move("payments/tangier/0"); !ok || m.From != 10 || m.Done || m.PID != b.PID {
		t.Fatalf("after a restart, the step of tangier/0: %+v", m)
	}
	log := l.Moves()
	if len(log) != 1 || log[0].PID != a.PID || log[0].Records != 10 || log[0].Routes[0].DestTo != 110 || log[0].Finished == 0 {
		t.Fatalf("after a restart, the audit log: %+v", log)
	}
	d, err := l.Plan(step("payments/tangier/9", 0, 4))
	if err != nil || d.PID != c.PID+1 {
		t.Fatalf("a plan after a restart: pid %d, %v; want %d", d.PID, err, c.PID+1)
	}
}

// TestForget: a deleted pipeline's last steps are forgotten, across a
// restart, and its buffers may start again from offset 0; its done steps
// stay in the audit log.
func TestForget(t *testing.T) {
	mem := newMem(t)
	l := openT(t, mem)
	a, _ := l.Plan(step("old/h/0", 0, 10))
	if err := l.Done(done(a, 10)); err != nil {
		t.Fatal(err)
	}
	b, _ := l.Plan(step("other/h/0", 0, 10))
	if got := l.Pipelines(); len(got) != 2 || got[0] != "old" || got[1] != "other" {
		t.Fatalf("pipelines with steps: %v", got)
	}
	if err := l.Forget("old"); err != nil {
		t.Fatal(err)
	}
	before, _ := mem.ReadFile(path)
	if err := l.Forget("never"); err != nil {
		t.Fatal(err)
	}
	if after, _ := mem.ReadFile(path); len(after) != len(before) {
		t.Fatal("forgetting a pipeline with no step wrote a record")
	}
	l.Close()
	mem.CrashClean()
	l = openT(t, mem)
	defer l.Close()
	if _, ok := l.Move("old/h/0"); ok {
		t.Fatal("a forgotten pipeline's step is back after a restart")
	}
	if m, ok := l.Move("other/h/0"); !ok || m.PID != b.PID {
		t.Fatalf("another pipeline's step: %+v", m)
	}
	if log := l.Moves(); len(log) != 1 || log[0].Source != "old/h/0" {
		t.Fatalf("the audit log after forgetting: %+v", log)
	}
	c, err := l.Plan(step("old/h/0", 0, 5))
	if err != nil || c.PID <= b.PID {
		t.Fatalf("a plan of the new pipeline from offset 0: %+v, %v", c, err)
	}
}

// TestDamage: a torn tail is cut; a damaged record with whole records
// after it, or a record that does not follow the ones before it, keeps the
// log from opening.
func TestDamage(t *testing.T) {
	mem := newMem(t)
	l := openT(t, mem)
	a, _ := l.Plan(step("s/h/0", 0, 10))
	if err := l.Done(done(a, 10)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	good, _ := mem.ReadFile(path)
	write := func(b []byte) {
		t.Helper()
		if err := vfs.WriteFileAtomic(mem, path, b); err != nil {
			t.Fatal(err)
		}
	}
	// A torn record at the end.
	torn := appendRecord(bytes.Clone(good), []byte(`{"op":"move.plan","move":{"source":"s/h/0","from":10,"to":20}}`))
	write(torn[:len(torn)-5])
	l = openT(t, mem)
	if m, _ := l.Move("s/h/0"); !m.Done {
		t.Fatalf("after cutting a torn tail: %+v", m)
	}
	if _, err := l.Plan(step("s/h/0", 10, 20)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if b, _ := mem.ReadFile(path); len(b) <= len(good) {
		t.Fatal("the plan after the cut tail was not appended")
	}
	// The first record damaged, the second whole.
	bad := bytes.Clone(good)
	bad[headerSize+overhead+3] ^= 0x20
	write(bad)
	if _, err := Open(mem, path, Options{Logger: quiet}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open with a damaged first record: %v, want ErrCorrupt", err)
	}
	// A done with no plan before it.
	var orphan []byte
	orphan = append(orphan, header()...)
	orphan = appendRecord(orphan, []byte(`{"op":"move.done","move":{"source":"s/h/0","from":0,"to":10}}`))
	write(orphan)
	if _, err := Open(mem, path, Options{Logger: quiet}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open with a done and no plan: %v, want ErrCorrupt", err)
	}
}

// TestFaults injects a failed write, a short write, a failed fdatasync or
// a failed directory sync at each operation of a run of steps, then cuts
// the power: every step acknowledged before is replayed, at most the one
// in flight besides, the log refused every step after the failure, and no
// producer id of an acknowledged plan is handed out again.
func TestFaults(t *testing.T) {
	kinds := []string{"write", "short", "sync", "syncdir"}
	for _, kind := range kinds {
		for at := 0; at < 14; at++ {
			t.Run(fmt.Sprintf("%s-%d", kind, at), func(t *testing.T) {
				mem := newMem(t)
				ffs := vfs.NewFault(mem)
				switch kind {
				case "write":
					ffs.FailWrite(at, syscall.EIO)
				case "short":
					ffs.ShortWrite(at)
				case "sync":
					ffs.FailSync(at, syscall.EIO)
				case "syncdir":
					ffs.FailSyncDir(at, syscall.EIO)
				}
				l := openT(t, ffs)
				var plans []meta.Move // acknowledged
				var dones int
				var failed bool
				for i := 0; i < 12 && !failed; i++ {
					src := fmt.Sprintf("p/h/%d", i%2)
					cur, ok := l.Move(src)
					var err error
					if ok && !cur.Done {
						err = l.Done(done(cur, cur.To-cur.From))
						if err == nil {
							dones++
						}
					} else {
						var m meta.Move
						m, err = l.Plan(step(src, cur.To, cur.To+10))
						if err == nil {
							plans = append(plans, m)
						}
					}
					if err != nil {
						if !errors.Is(err, ErrFailed) {
							t.Fatalf("step %d: %v, want ErrFailed", i, err)
						}
						failed = true
					}
				}
				if failed {
					if _, err := l.Plan(step("p/h/7", 0, 1)); !errors.Is(err, ErrFailed) {
						t.Fatalf("a step after the failure: %v, want ErrFailed", err)
					}
				}
				l.Close()
				mem.Crash(rand.New(rand.NewPCG(uint64(at), 3)))
				l = openT(t, mem)
				defer l.Close()
				if got := len(l.Moves()); got < dones || got > dones+1 {
					t.Fatalf("%d steps done after the crash; %d were acknowledged", got, dones)
				}
				for _, p := range plans {
					m, ok := l.Move(p.Source)
					if !ok || m.From < p.From {
						t.Fatalf("acknowledged plan %s from %d lost: %+v", p.Source, p.From, m)
					}
				}
				next, err := l.Plan(step("p/h/9", 0, 1))
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range plans {
					if next.PID <= p.PID {
						t.Fatalf("producer id %d handed out again (acknowledged plan of %s)", next.PID, p.Source)
					}
				}
			})
		}
	}
}

// FuzzOpen opens move logs of arbitrary bytes: Open never panics; it
// fails, or gives a log that records a next step.
func FuzzOpen(f *testing.F) {
	mem := newMem(f)
	l := openT(f, mem)
	a, _ := l.Plan(step("s/h/0", 0, 10))
	l.Done(done(a, 10))
	l.Plan(step("s/h/0", 10, 20))
	l.Close()
	valid, _ := mem.ReadFile(path)
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add(valid[:headerSize])
	f.Add(valid[:headerSize-1])
	huge := bytes.Clone(valid)
	binary.BigEndian.PutUint32(huge[headerSize:], 0x7fffffff)
	f.Add(huge)
	neg := bytes.Clone(valid)
	binary.BigEndian.PutUint32(neg[headerSize:], 0xffffffff)
	f.Add(neg)
	zero := bytes.Clone(valid)
	binary.BigEndian.PutUint32(zero[headerSize:], 0)
	f.Add(zero)
	f.Add(appendRecord(header(), []byte(`{"op":"hub.status","move":{}}`)))
	f.Add(appendRecord(header(), []byte(`{"op":"move.plan"}`)))
	f.Add(appendRecord(header(), []byte(`[1,2`)))
	f.Add(appendRecord(header(), []byte(`{"op":"move.forget","pipeline":"s"}`)))
	f.Add(appendRecord(header(), []byte(`{"op":"move.forget"}`)))
	f.Fuzz(func(t *testing.T, raw []byte) {
		mem := newMem(t)
		if err := vfs.WriteFileAtomic(mem, path, raw); err != nil {
			t.Fatal(err)
		}
		l, err := Open(mem, path, Options{Logger: quiet})
		if err != nil {
			return
		}
		defer l.Close()
		if cmds, end, err := Decode(raw); err != nil || end > int64(len(raw)) {
			t.Fatalf("Open accepted what Decode refuses: %d commands, end %d, %v", len(cmds), end, err)
		}
		src := "fuzz/h/0"
		from := int64(0)
		if m, ok := l.Move(src); ok {
			if !m.Done {
				return
			}
			from = m.To
		}
		if _, err := l.Plan(step(src, from, from+1)); err != nil {
			t.Fatalf("plan after open: %v", err)
		}
	})
}
