package kafka_test

import (
	"context"
	"errors"
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
