package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/seglog"
	"github.com/sensehq/sense/vfs"
)

// benchNode is a dev-mode node (one hub of every jurisdiction) in a
// temporary directory.
func benchNode(b *testing.B, durability seglog.Durability) *Node {
	b.Helper()
	reg, _ := jurisdiction.New([]string{"MA", "SN"}, nil)
	n, err := Open(Options{DataDir: b.TempDir(), Registry: reg, Hubs: []HubSpec{{Name: "local", Jurisdiction: "*"}},
		Durability: durability, AutoCreate: true, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Close() })
	return n
}

// benchEvents returns n keyless events of 100-byte values.
func benchEvents(n int) []Event {
	value := make([]byte, 100)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = Event{Value: value}
	}
	return evs
}

// BenchmarkStartProduce is the node's produce path per event (one op is
// one event): resolve defaults, route, build the record batch with the
// routing headers, and append it (a write to the page cache: fsync
// never), in requests of 100 events from an idempotent producer, as the
// native edge hands them over. Allocations per op are per event.
func BenchmarkStartProduce(b *testing.B) {
	n := benchNode(b, seglog.Durability{Mode: seglog.SyncNever})
	const per = 100
	req := &ProduceRequest{Pipeline: "bench", ProducerID: pid(b, n), Events: benchEvents(per)}
	res := make([]Result, per)
	ctx := context.Background()
	run := func() {
		pd, err := n.StartProduce(ctx, req, res)
		if err != nil {
			b.Fatal(err)
		}
		pd.Wait()
		if res[0].Code != 0 {
			b.Fatalf("produce: %v", res[0].Code)
		}
		req.BaseSequence += per
	}
	run() // creates the pipeline
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += per {
		run()
	}
}

// BenchmarkProduce is Produce (reserve memory, start, wait) with the
// default durability, fsync always, in requests of 1000 events from 4 concurrent producers; one op is one
// event.
func BenchmarkProduce(b *testing.B) {
	n := benchNode(b, seglog.Durability{Mode: seglog.SyncAlways})
	const per = 1000
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(2) // 2 x GOMAXPROCS producers
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := &ProduceRequest{Pipeline: "bench", ProducerID: pid(b, n), Events: benchEvents(per)}
		res := make([]Result, per)
		for k := 0; pb.Next(); k++ {
			if k%per != 0 {
				continue
			}
			if err := n.Produce(ctx, req, res); err != nil {
				b.Fatal(err)
			}
			if res[0].Code != 0 {
				b.Fatalf("produce: %v", res[0].Code)
			}
			req.BaseSequence += per
		}
	})
}

// BenchmarkCreatePipeline creates b.N pipelines of the dev layout (one
// hub, three lanes) on the real file system, fsync always; it reports the
// fsyncs (file and directory) per creation and the open files the node
// holds per pipeline.
func BenchmarkCreatePipeline(b *testing.B) {
	reg, _ := jurisdiction.New([]string{"MA", "SN"}, nil)
	fs := &countingFS{FS: vfs.Default}
	n, err := Open(Options{DataDir: b.TempDir(), FS: fs, Registry: reg, Hubs: []HubSpec{{Name: "local", Jurisdiction: "*"}},
		Durability: seglog.Durability{Mode: seglog.SyncAlways}, AutoCreate: true, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer n.Close()
	before := openFiles(b)
	syncs := fs.syncs.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := n.CreatePipeline(PipelineSpec{Name: fmt.Sprintf("p%d", i)}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(fs.syncs.Load()-syncs)/float64(b.N), "fsyncs/op")
	b.ReportMetric(float64(openFiles(b)-before)/float64(b.N), "files/pipeline")
}

func openFiles(b testing.TB) int {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		b.Fatal(err)
	}
	return len(fds)
}

// countingFS counts the fsyncs of files and directories made through it.
type countingFS struct {
	vfs.FS
	syncs atomic.Int64
}

type countingFile struct {
	vfs.File
	fs *countingFS
}

func (f countingFile) Sync() error {
	f.fs.syncs.Add(1)
	return f.File.Sync()
}

func (c *countingFS) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return countingFile{f, c}, nil
}

func (c *countingFS) Create(name string) (vfs.File, error) { return c.wrap(c.FS.Create(name)) }
func (c *countingFS) OpenRW(name string) (vfs.File, error) { return c.wrap(c.FS.OpenRW(name)) }
func (c *countingFS) Open(name string) (vfs.File, error)   { return c.wrap(c.FS.Open(name)) }
func (c *countingFS) Mkdir(dir string) error               { return vfs.Mkdir(c.FS, dir) }

func (c *countingFS) SyncDir(dir string) error {
	c.syncs.Add(1)
	return c.FS.SyncDir(dir)
}

// MkdirAll is the inner MkdirAll, with its syncs made (and counted) here.
func (c *countingFS) MkdirAll(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := c.MkdirAll(parent); err != nil {
			return err
		}
	}
	if err := vfs.Mkdir(c.FS, dir); err != nil {
		return err
	}
	if err := c.SyncDir(dir); err != nil {
		return err
	}
	return c.SyncDir(parent)
}

func pid(b *testing.B, n *Node) int64 {
	id, err := n.NewProducerID()
	if err != nil {
		b.Fatal(err)
	}
	return id
}
