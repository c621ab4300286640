package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/seglog"
)

// bufferDirs lists the buffer directories of a pipeline in every hub.
func bufferDirs(t *testing.T, dataDir, name string) []string {
	t.Helper()
	var out []string
	hubs, _ := os.ReadDir(filepath.Join(dataDir, "hubs"))
	for _, h := range hubs {
		entries, _ := os.ReadDir(filepath.Join(dataDir, "hubs", h.Name()))
		for _, e := range entries {
			if isBufferDir(e.Name(), name) {
				out = append(out, filepath.Join(h.Name(), e.Name()))
			}
		}
	}
	return out
}

func appendN(t *testing.T, n *Node, pipeline string, partition int32, count int) {
	t.Helper()
	for range count {
		if _, code, why := n.AppendRaw(context.Background(), pipeline, partition, rawBatch()); code != result.OK {
			t.Fatalf("append to %s/%d: %v (%s)", pipeline, partition, code, why)
		}
	}
}

// expectEmpty checks that a pipeline exists and that every buffer of it is
// empty from offset 0.
func expectEmpty(t *testing.T, n *Node, pipeline string) {
	t.Helper()
	parts, code := n.Partitions(pipeline)
	if code != result.OK {
		t.Fatalf("%s: %v", pipeline, code)
	}
	for _, p := range parts {
		if p.Start != 0 || p.HighWatermark != 0 {
			t.Fatalf("%s partition %d holds [%d, %d), want an empty buffer", pipeline, p.Partition, p.Start, p.HighWatermark)
		}
	}
}

// TestDeletePipeline: a deleted pipeline is gone from the catalog, the
// routing state and the disk; one created again under its name starts
// empty.
func TestDeletePipeline(t *testing.T) {
	dir := t.TempDir()
	n, _ := threeHubs(t, dir)
	defer n.Close()
	if err := n.CreatePipeline(PipelineSpec{Name: "telemetry", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	// A pipeline whose name extends the deleted one's keeps its buffers.
	if err := n.CreatePipeline(PipelineSpec{Name: "telemetry-1"}); err != nil {
		t.Fatal(err)
	}
	// A buffer's directory is created by its first write.
	for part := range int32(3 * 3 * 2) {
		appendN(t, n, "telemetry", part, 1)
	}
	appendN(t, n, "telemetry", 0, 2)
	appendN(t, n, "telemetry-1", 0, 1)
	var deleted []string
	n.opts.PipelineDeleted = func(name string) error {
		deleted = append(deleted, name)
		return nil
	}
	if got := len(bufferDirs(t, dir, "telemetry")); got != 3*3*2 {
		t.Fatalf("%d buffer directories before deleting, want 18", got)
	}

	if err := n.DeletePipeline("telemetry"); err != nil {
		t.Fatal(err)
	}
	if _, code := n.Partitions("telemetry"); code != result.UnknownPipeline {
		t.Fatalf("partitions after delete: %v", code)
	}
	if _, code := n.buffer("telemetry", 0); code != result.UnknownPipeline {
		t.Fatalf("log after delete: %v", code)
	}
	if _, code, _ := n.AppendRaw(context.Background(), "telemetry", 0, rawBatch()); code != result.UnknownPipeline {
		t.Fatalf("append after delete: %v", code)
	}
	if slices.ContainsFunc(n.Pipelines(), func(p PipelineSpec) bool { return p.Name == "telemetry" }) {
		t.Fatal("the catalog still lists the pipeline")
	}
	if left := bufferDirs(t, dir, "telemetry"); len(left) != 0 {
		t.Fatalf("buffer directories left: %v", left)
	}
	// The hook that forgets the groups' commits on it ran, once.
	if !slices.Equal(deleted, []string{"telemetry"}) {
		t.Fatalf("PipelineDeleted was called for %v, want [telemetry]", deleted)
	}
	if err := n.DeletePipeline("telemetry"); !errors.Is(err, ErrUnknownPipeline) {
		t.Fatalf("second delete: %v", err)
	}
	// The other pipeline is untouched.
	if l, code := n.buffer("telemetry-1", 0); code != result.OK || l.HighWatermark() != 1 {
		t.Fatalf("telemetry-1 after deleting telemetry: %v", code)
	}

	// Created again, with another layout: empty, and writable from 0.
	if err := n.CreatePipeline(PipelineSpec{Name: "telemetry", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	expectEmpty(t, n, "telemetry")
	if parts, _ := n.Partitions("telemetry"); len(parts) != 3*3*1 {
		t.Fatalf("%d partitions after re-creating, want 9", len(parts))
	}
	if base, code, why := n.AppendRaw(context.Background(), "telemetry", 0, rawBatch()); code != result.OK || base != 0 {
		t.Fatalf("append after re-creating: base %d, %v (%s)", base, code, why)
	}
}

// TestDeletePipelineSurvivesRestart: the deletion is durable, and the name
// can be used again after the restart.
func TestDeletePipelineSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	n, _ := threeHubs(t, dir)
	if err := n.CreatePipeline(PipelineSpec{Name: "telemetry"}); err != nil {
		t.Fatal(err)
	}
	appendN(t, n, "telemetry", 0, 2)
	if err := n.DeletePipeline("telemetry"); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}

	n, _ = threeHubs(t, dir)
	defer n.Close()
	if _, code := n.Partitions("telemetry"); code != result.UnknownPipeline {
		t.Fatalf("after restart: %v", code)
	}
	if slices.ContainsFunc(n.Pipelines(), func(p PipelineSpec) bool { return p.Name == "telemetry" }) {
		t.Fatal("after restart the catalog lists the deleted pipeline")
	}
	if err := n.CreatePipeline(PipelineSpec{Name: "telemetry"}); err != nil {
		t.Fatal(err)
	}
	expectEmpty(t, n, "telemetry")
}

// TestDeleteDeclaredPipeline: a pipeline of the config file is refused and
// keeps serving.
func TestDeleteDeclaredPipeline(t *testing.T) {
	n, _ := threeHubs(t, t.TempDir())
	defer n.Close()
	appendN(t, n, "payments", 0, 1)
	err := n.DeletePipeline("payments")
	if !errors.Is(err, ErrPipelineDeclared) {
		t.Fatalf("deleting a declared pipeline: %v", err)
	}
	if l, code := n.buffer("payments", 0); code != result.OK || l.HighWatermark() != 1 {
		t.Fatalf("payments after the refused delete: %v", code)
	}
	if err := n.DeletePipeline("nope"); !errors.Is(err, ErrUnknownPipeline) {
		t.Fatalf("deleting an unknown pipeline: %v", err)
	}
}

// TestCreateRemovesLeftoverBuffers: buffers a crash left behind (catalog
// saved without the pipeline, directories not yet removed) do not become
// a new pipeline's.
func TestCreateRemovesLeftoverBuffers(t *testing.T) {
	dir := t.TempDir()
	n, _ := threeHubs(t, dir)
	n.Close()
	// What a crash in the middle of DeletePipeline leaves: a buffer with
	// events and no pipeline, found by the next start.
	l, err := seglog.Open(filepath.Join(dir, "hubs", "tangier", "ghost-0"), seglog.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(rawBatch()); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	n, _ = threeHubs(t, dir)
	defer n.Close()
	if err := n.CreatePipeline(PipelineSpec{Name: "ghost"}); err != nil {
		t.Fatal(err)
	}
	expectEmpty(t, n, "ghost")
}

// TestDeleteWhileInFlight: appends and reads racing a deletion get result.OK or
// result.UnknownPipeline, never a storage error or a crash, and a fetch waiting
// for data on the deleted pipeline returns at once.
func TestDeleteWhileInFlight(t *testing.T) {
	n, _ := threeHubs(t, t.TempDir())
	defer n.Close()
	if err := n.CreatePipeline(PipelineSpec{Name: "telemetry"}); err != nil {
		t.Fatal(err)
	}
	appendN(t, n, "telemetry", 0, 1)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waited := make(chan result.Code, 1)
	go func() {
		// Partition 3 stays empty: this fetch waits for data.
		_, _, _, code := n.Fetch(ctx, "telemetry", 3, Latest, 1<<20, nil)
		waited <- code
	}()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[result.Code]int{}
	note := func(c result.Code) {
		mu.Lock()
		codes[c]++
		mu.Unlock()
	}
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, code, _ := n.AppendRaw(context.Background(), "telemetry", 0, rawBatch())
				note(code)
			}
		})
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _, _, code := n.Fetch(context.Background(), "telemetry", 0, 0, 1<<20, nil)
				note(code)
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	start := time.Now()
	if err := n.DeletePipeline("telemetry"); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-waited:
		if code != result.UnknownPipeline {
			t.Errorf("waiting fetch ended with %v, want UNKNOWN_PIPELINE", code)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("waiting fetch ended %v after the delete", d)
		}
	case <-ctx.Done():
		t.Error("waiting fetch did not end when its pipeline was deleted")
	}
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
	for c, k := range codes {
		if c != result.OK && c != result.UnknownPipeline {
			t.Errorf("%d operations ended with %v", k, c)
		}
	}
	if codes[result.UnknownPipeline] == 0 {
		t.Error("no operation saw the deletion")
	}
}
