package kafka_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/edge/kafka"
	"github.com/sensehq/sense/group"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/seglog"
	"github.com/sensehq/sense/vfs"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// heldSyncFS holds the fdatasyncs of the files under dir while held is
// armed, and counts the syncs it held.
type heldSyncFS struct {
	vfs.FS
	dir     string
	mu      sync.Mutex
	armed   bool
	release chan struct{}
	entered chan struct{}
}

type heldSyncFile struct {
	vfs.File
	fs *heldSyncFS
}

func (h *heldSyncFS) Create(name string) (vfs.File, error) {
	f, err := h.FS.Create(name)
	return h.wrap(name, f, err)
}

func (h *heldSyncFS) OpenRW(name string) (vfs.File, error) {
	f, err := h.FS.OpenRW(name)
	return h.wrap(name, f, err)
}

func (h *heldSyncFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.Contains(name, h.dir) {
		return f, err
	}
	return &heldSyncFile{File: f, fs: h}, nil
}

func (f *heldSyncFile) Sync() error {
	h := f.fs
	h.mu.Lock()
	armed, release := h.armed, h.release
	h.mu.Unlock()
	if armed {
		select {
		case h.entered <- struct{}{}:
		default:
		}
		<-release
	}
	return f.File.Sync()
}

// TestProduceRequestsPipelined: two Produce requests sent back to back on
// one connection. While the first one's fdatasync is held, the second is
// already handled (its batch written after the first one's); once the
// fdatasync goes, both are answered, in request order, each with its own
// offsets. A connection that handled one request at a time would write
// nothing of the second until the first was durable.
func TestProduceRequestsPipelined(t *testing.T) {
	fs := &heldSyncFS{FS: vfs.Default, dir: "piped", release: make(chan struct{}), entered: make(chan struct{}, 1)}
	dir := t.TempDir()
	reg, _ := jurisdiction.New([]string{"MA"}, nil)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := node.Open(node.Options{
		DataDir: filepath.Join(dir, "data"), FS: fs, Registry: reg,
		Hubs:       []node.HubSpec{{Name: "h", Jurisdiction: "*"}},
		Pipelines:  []node.PipelineSpec{{Name: "piped", Partitions: 1, DefaultJurisdiction: "MA", DefaultPriority: "low"}},
		Durability: seglog.Durability{Mode: seglog.SyncAlways},
		Logger:     quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	offsets, err := group.Open(nil, filepath.Join(dir, "groups"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer offsets.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ks, err := kafka.New(n, offsets, kafka.Options{AdvertisedAddr: ln.Addr().String(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ks.Serve(ln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ks.Shutdown(ctx)
		if err := <-served; !errors.Is(err, kafka.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	}()

	produce := func(values ...string) *kmsg.ProduceRequest {
		var b batch.Builder
		b.Reset(-1, -1, -1)
		for _, v := range values {
			b.Add(time.Now().UnixMilli(), nil, []byte(v))
		}
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 10000
		tp := kmsg.NewProduceRequestTopicPartition()
		tp.Records = append([]byte(nil), b.Finish()...)
		topic := kmsg.NewProduceRequestTopic()
		topic.Topic, topic.Partitions = "piped", []kmsg.ProduceRequestTopicPartition{tp}
		req.Topics = []kmsg.ProduceRequestTopic{topic}
		return req
	}
	k := dialKafka(t, ln.Addr().String())
	fs.mu.Lock()
	fs.armed = true
	fs.mu.Unlock()
	released := false
	release := func() {
		if !released {
			released = true
			fs.mu.Lock()
			fs.armed = false
			fs.mu.Unlock()
			close(fs.release)
		}
	}
	defer release()
	// The bytes written to the partition's segment files.
	written := func() int64 {
		var total int64
		filepath.WalkDir(filepath.Join(dir, "data"), func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.Contains(path, "piped") && strings.HasSuffix(path, ".log") {
				if info, err := d.Info(); err == nil {
					total += info.Size()
				}
			}
			return nil
		})
		return total
	}
	k.send(produce("a1", "a2", "a3"), 7)
	<-fs.entered // the first request's fdatasync is held
	first := written()
	k.send(produce("b1", "b2"), 7)
	deadline := time.Now().Add(10 * time.Second)
	for written() == first {
		if time.Now().After(deadline) {
			t.Fatalf("the second request was not written while the first one's fdatasync ran (%d bytes in the partition)", first)
		}
		time.Sleep(time.Millisecond)
	}
	release()
	for i, want := range []int64{0, 3} {
		resp := kmsg.NewPtrProduceResponse()
		k.recv(resp, 7)
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.BaseOffset != want {
			t.Fatalf("answer %d: error %d, base offset %d; want 0 and %d (answers in request order)", i, p.ErrorCode, p.BaseOffset, want)
		}
	}
}

// TestPipelinedRequestsKeepOrder: three connections each send, in one
// write, 40 Produce requests, a Fetch that waits (MaxWait 300 ms at the end
// of an empty partition), then 40 more Produce requests, and read the
// answers only afterwards. The first requests find nothing of their
// connection queued, so the reader starts them itself; those read while
// the Fetch waits in the handler go through the handler's queue, and the
// later ones again through the reader once the queue is empty. Every
// connection's answers come in request order (correlation ids), and its
// produces' base offsets rise in request order: both ways of starting a
// produce keep the connection's order.
func TestPipelinedRequestsKeepOrder(t *testing.T) {
	addr := startTB(t, "durability: {fsync: never}\npipelines:\n  - {name: order, partitions: 1}\n  - {name: idle, partitions: 1}\n")
	produce := func(topic string) *kmsg.ProduceRequest {
		var b batch.Builder
		b.Reset(-1, -1, -1)
		b.Add(time.Now().UnixMilli(), nil, make([]byte, 100))
		b.Add(time.Now().UnixMilli(), nil, make([]byte, 100))
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 10000
		tp := kmsg.NewProduceRequestTopicPartition()
		tp.Records = append([]byte(nil), b.Finish()...)
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic, rt.Partitions = topic, []kmsg.ProduceRequestTopicPartition{tp}
		req.Topics = []kmsg.ProduceRequestTopic{rt}
		return req
	}
	fetch := func() *kmsg.FetchRequest {
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = -1, 300, 1, 1<<20
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = "idle"
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes = 0, 0, 1<<20
		ft.Partitions = []kmsg.FetchRequestTopicPartition{fp}
		req.Topics = []kmsg.FetchRequestTopic{ft}
		return req
	}

	const conns, half = 3, 40
	errs := make(chan error, conns)
	for k := range conns {
		go func() {
			errs <- func() error {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					return err
				}
				defer c.Close()
				var out []byte
				corr := int32(0)
				for range half {
					corr++
					out = append(out, rawRequest(produce("order"), 7, corr)...)
				}
				corr++
				fetchCorr := corr
				out = append(out, rawRequest(fetch(), 11, corr)...)
				for range half {
					corr++
					out = append(out, rawRequest(produce("order"), 7, corr)...)
				}
				if _, err := c.Write(out); err != nil {
					return err
				}
				c.SetReadDeadline(time.Now().Add(20 * time.Second))
				last := int64(-1)
				for want := int32(1); want <= corr; want++ {
					var sz [4]byte
					if _, err := io.ReadFull(c, sz[:]); err != nil {
						return fmt.Errorf("connection %d, answer %d: %w", k, want, err)
					}
					b := make([]byte, binary.BigEndian.Uint32(sz[:]))
					if _, err := io.ReadFull(c, b); err != nil {
						return err
					}
					if got := int32(binary.BigEndian.Uint32(b)); got != want {
						return fmt.Errorf("connection %d: answer for request %d where %d's was due", k, got, want)
					}
					if want == fetchCorr {
						continue
					}
					resp := kmsg.NewPtrProduceResponse()
					resp.SetVersion(7)
					if err := resp.ReadFrom(b[4:]); err != nil {
						return err
					}
					p := resp.Topics[0].Partitions[0]
					if p.ErrorCode != 0 || p.BaseOffset <= last {
						return fmt.Errorf("connection %d, request %d: error %d at base offset %d after %d: want 0 at a later offset", k, want, p.ErrorCode, p.BaseOffset, last)
					}
					last = p.BaseOffset
				}
				return nil
			}()
		}()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
