package node

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/sensehq/sense/vfs"
)

// catalogBytes is a catalog log holding specs, as save writes it.
func catalogBytes(t testing.TB, specs ...PipelineSpec) []byte {
	t.Helper()
	mem := vfs.NewMem()
	c, err := loadCatalog(mem, "/", quiet)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		if err := c.create(s); err != nil {
			t.Fatal(err)
		}
	}
	c.close()
	raw, err := mem.ReadFile("/" + catalogName)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// Every change is one record; replaying them gives the catalog back, and
// the log is compacted once its records outnumber the pipelines.
func TestCatalogLog(t *testing.T) {
	mem := vfs.NewMem()
	if err := mem.MkdirAll("/d"); err != nil {
		t.Fatal(err)
	}
	c, err := loadCatalog(mem, "/d", quiet)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 * compactSlack {
		if err := c.create(PipelineSpec{Name: fmt.Sprintf("p%d", i), Partitions: 1}); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			if err := c.remove(fmt.Sprintf("p%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		if i%3 == 1 {
			if err := c.update(PipelineSpec{Name: fmt.Sprintf("p%d", i), Partitions: 2}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if c.records > 2*len(c.Pipelines)+compactSlack {
		t.Fatalf("%d records for %d pipelines: not compacted", c.records, len(c.Pipelines))
	}
	want := c.Pipelines
	c.close()
	mem.CrashClean() // every change was synced
	c, err = loadCatalog(mem, "/d", quiet)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Pipelines) != len(want) {
		t.Fatalf("reopened: %d pipelines, want %d", len(c.Pipelines), len(want))
	}
	for i, s := range want {
		got := c.find(s.Name)
		if got == nil || got.Partitions != s.Partitions || c.Pipelines[i].Name != s.Name {
			t.Fatalf("reopened: pipeline %d %q: %+v", i, s.Name, got)
		}
	}
}

// A record cut short or failing its CRC at the end is a torn tail: cut,
// and the catalog appends after it. The same damage before a whole record
// is reported.
func TestCatalogTornTailAndDamage(t *testing.T) {
	raw := catalogBytes(t, PipelineSpec{Name: "a", Partitions: 1}, PipelineSpec{Name: "b", Partitions: 1})
	_, end1, _, err := decodeCatalog(catalogBytes(t, PipelineSpec{Name: "a", Partitions: 1}))
	if err != nil {
		t.Fatal(err)
	}
	for name, torn := range map[string][]byte{
		"cut in the header": raw[:end1+5],
		"cut in the body":   raw[:len(raw)-3],
		"bad CRC at the end": func() []byte {
			b := bytes.Clone(raw)
			b[len(b)-1] ^= 1
			return b
		}(),
		"zeros": append(bytes.Clone(raw[:end1]), make([]byte, 40)...),
	} {
		mem := vfs.NewMem()
		if err := vfs.WriteFileAtomic(mem, "/"+catalogName, torn); err != nil {
			t.Fatal(err)
		}
		c, err := loadCatalog(mem, "/", quiet)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(c.Pipelines) != 1 || c.Pipelines[0].Name != "a" {
			t.Fatalf("%s: %+v", name, c.Pipelines)
		}
		if err := c.create(PipelineSpec{Name: "c", Partitions: 1}); err != nil {
			t.Fatal(err)
		}
		c.close()
		if c, err = loadCatalog(mem, "/", quiet); err != nil || len(c.Pipelines) != 2 || c.find("c") == nil {
			t.Fatalf("%s: after an append past the cut: %v %+v", name, err, c)
		}
	}
	// Damage in the first record, with a whole record after it.
	b := bytes.Clone(raw)
	b[catalogHeader+recordOverhead+3] ^= 1
	if _, _, _, err := decodeCatalog(b); !errors.Is(err, ErrCatalogCorrupt) {
		t.Fatalf("damage before a whole record: %v", err)
	}
}

// A failed fsync of an append: the change is refused and not read back;
// the next change rewrites the catalog into a new file (the fsync is
// never retried), and both survive a crash.
func TestCatalogAppendFails(t *testing.T) {
	mem := vfs.NewMem()
	fault := vfs.NewFault(mem)
	c, err := loadCatalog(fault, "/", quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.create(PipelineSpec{Name: "a", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	fault.FailSync(0, nil)
	if err := c.create(PipelineSpec{Name: "b", Partitions: 1}); err == nil {
		t.Fatal("create with a failing fsync succeeded")
	}
	if c.find("b") != nil || len(c.Pipelines) != 1 {
		t.Fatalf("after the failure: %+v", c.Pipelines)
	}
	fault.Reset()
	if err := c.create(PipelineSpec{Name: "c", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	c.close()
	mem.CrashClean()
	c, err = loadCatalog(mem, "/", quiet)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Pipelines) != 2 || c.find("a") == nil || c.find("c") == nil {
		t.Fatalf("after a crash: %+v", c.Pipelines)
	}
}

// FuzzDecodeCatalog: whatever a catalog log holds, decodeCatalog returns
// pipelines or an error; it never panics, its end is within the input,
// and decoding the prefix it vouches for gives the same pipelines.
func FuzzDecodeCatalog(f *testing.F) {
	raw := catalogBytes(f, PipelineSpec{Name: "a", Partitions: 1}, PipelineSpec{Name: "b", Slots: []Slot{{Hub: "x"}}})
	f.Add(raw)
	f.Add(raw[:catalogHeader])
	f.Add(raw[:len(raw)-2])
	f.Add(append(bytes.Clone(raw), 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0))
	f.Add(append(bytes.Clone(raw), appendRecord(nil, kindDelete, []byte("a"))...))
	f.Add(append(bytes.Clone(raw), appendRecord(nil, 9, []byte("x"))...))
	f.Add(append(bytes.Clone(raw), appendRecord(nil, kindPut, []byte("{"))...))
	f.Add([]byte("SENSECAT"))
	f.Fuzz(func(t *testing.T, b []byte) {
		specs, end, _, err := decodeCatalog(b)
		if err != nil {
			return
		}
		if end < catalogHeader || end > int64(len(b)) {
			t.Fatalf("end %d outside [%d, %d]", end, catalogHeader, len(b))
		}
		again, end2, _, err := decodeCatalog(b[:end])
		if err != nil || end2 != end || len(again) != len(specs) {
			t.Fatalf("the vouched prefix decodes to %d pipelines (end %d, %v), the whole to %d (end %d)", len(again), end2, err, len(specs), end)
		}
	})
}

// crashAtFS cuts the power of a MemFS at its at-th write, sync, truncate,
// rename, remove or create: that operation and every later one fail.
type crashAtFS struct {
	*vfs.MemFS
	rng     *rand.Rand
	ops, at int
	crashed bool
}

var errPowerLoss = errors.New("power loss")

func (c *crashAtFS) step() error {
	if c.crashed {
		return errPowerLoss
	}
	c.ops++
	if c.ops == c.at {
		c.crashed = true
		c.MemFS.Crash(c.rng)
		return errPowerLoss
	}
	return nil
}

type crashAtFile struct {
	vfs.File
	c *crashAtFS
}

func (f crashAtFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.c.step(); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func (f crashAtFile) Sync() error {
	if err := f.c.step(); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f crashAtFile) Truncate(n int64) error {
	if err := f.c.step(); err != nil {
		return err
	}
	return f.File.Truncate(n)
}

func (c *crashAtFS) Create(name string) (vfs.File, error) {
	if err := c.step(); err != nil {
		return nil, err
	}
	f, err := c.MemFS.Create(name)
	if err != nil {
		return nil, err
	}
	return crashAtFile{f, c}, nil
}

func (c *crashAtFS) OpenRW(name string) (vfs.File, error) {
	f, err := c.MemFS.OpenRW(name)
	if err != nil {
		return nil, err
	}
	return crashAtFile{f, c}, nil
}

func (c *crashAtFS) Rename(o, n string) error {
	if err := c.step(); err != nil {
		return err
	}
	return c.MemFS.Rename(o, n)
}

func (c *crashAtFS) Remove(name string) error {
	if err := c.step(); err != nil {
		return err
	}
	return c.MemFS.Remove(name)
}

func (c *crashAtFS) SyncDir(dir string) error {
	if err := c.step(); err != nil {
		return err
	}
	return c.MemFS.SyncDir(dir)
}

// TestCatalogCrashes cuts the power at every operation of a run of
// creations, layout changes and deletions, with a compaction every few
// changes (and a migration from pipelines.json first): after the crash
// the catalog opens, every acknowledged change stands, and the one in
// flight either happened or did not.
func TestCatalogCrashes(t *testing.T) {
	defer func(s int) { compactSlack = s }(compactSlack)
	compactSlack = 2
	for at := 1; at < 300; at++ {
		mem := vfs.NewMem()
		if err := mem.MkdirAll("/d"); err != nil {
			t.Fatal(err)
		}
		if err := vfs.WriteFileAtomic(mem, "/d/"+legacyName, []byte(`{"version": 2, "pipelines": [{"name": "old", "partitions": 1}]}`)); err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(uint64(at), 7))
		cfs := &crashAtFS{MemFS: mem, rng: rand.New(rand.NewPCG(uint64(at), 8)), at: at}
		want := map[string]int{"old": 1} // acknowledged: name -> partitions
		unsure := map[string]bool{}
		if c, err := loadCatalog(cfs, "/d", quiet); err == nil {
			if err := c.save(); err != nil { // Open saves a migrated catalog
				unsure["old"] = true
			}
			for i := 0; i < 40 && !cfs.crashed; i++ {
				name := fmt.Sprintf("p%d", rng.IntN(12))
				var err error
				var after int // partitions after the change; 0: deleted
				switch {
				case c.find(name) == nil:
					after = 1 + rng.IntN(4)
					err = c.create(PipelineSpec{Name: name, Partitions: after})
				case rng.IntN(2) == 0:
					err = c.remove(name)
				default:
					after = 1 + rng.IntN(4)
					err = c.update(PipelineSpec{Name: name, Partitions: after})
				}
				if err != nil {
					if !cfs.crashed {
						t.Fatalf("crash at %d: change %d failed without a crash: %v", at, i, err)
					}
					unsure[name] = true
					break
				}
				if cfs.crashed {
					unsure[name] = true // returned after the power was cut
					break
				}
				if after == 0 {
					delete(want, name)
				} else {
					want[name] = after
				}
			}
			c.close()
		}
		if !cfs.crashed {
			mem.Crash(rng)
		}
		c, err := loadCatalog(mem, "/d", quiet)
		if err != nil {
			t.Fatalf("crash at %d: reopen: %v", at, err)
		}
		for name, parts := range want {
			if unsure[name] {
				continue
			}
			if s := c.find(name); s == nil || s.Partitions != parts {
				t.Fatalf("crash at %d: acknowledged %s with %d partitions; after the crash %+v", at, name, parts, s)
			}
		}
		for _, s := range c.Pipelines {
			if _, ok := want[s.Name]; !ok && !unsure[s.Name] {
				t.Fatalf("crash at %d: %s is in the catalog; its deletion was acknowledged", at, s.Name)
			}
		}
		// The reopened catalog takes changes again.
		if err := c.create(PipelineSpec{Name: "after", Partitions: 1}); err != nil && !errors.Is(err, ErrPipelineExists) {
			t.Fatalf("crash at %d: a change after the crash: %v", at, err)
		}
		c.close()
	}
}

// equalFold finds a pipeline differing only in case, and forgets it once
// it is deleted.
func TestCatalogEqualFold(t *testing.T) {
	mem := vfs.NewMem()
	c, err := loadCatalog(mem, "/", quiet)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Orders", "orders", "other"} {
		if err := c.create(PipelineSpec{Name: name, Partitions: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if got, ok := c.equalFold("ORDERS"); !ok || (got != "Orders" && got != "orders") {
		t.Fatalf("equalFold(ORDERS) = %q, %v", got, ok)
	}
	if got, ok := c.equalFold("orders"); !ok || got != "Orders" {
		t.Fatalf("equalFold(orders) = %q, %v; want Orders", got, ok)
	}
	if err := c.remove("Orders"); err != nil {
		t.Fatal(err)
	}
	if got, ok := c.equalFold("orders"); ok {
		t.Fatalf("equalFold(orders) after deleting Orders = %q", got)
	}
	if c.find("other") == nil || c.find("orders") == nil || c.find("Orders") != nil {
		t.Fatalf("index after the deletion: %v", c.index)
	}
}
