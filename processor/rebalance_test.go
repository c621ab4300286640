package processor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sensehq/sense/client"
	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/group"
	"github.com/sensehq/sense/processor"
	"github.com/sensehq/sense/sensetest"
)

// TestMembersShareAndRebalance: two managers run the same processor as
// members of one group (one coordinator, the node's offsets): the second
// joining rebalances the partitions over both, the first leaving gives
// them all to the second, and the files hold every event once.
func TestMembersShareAndRebalance(t *testing.T) {
	srv := sensetest.Start(t, `
pipelines:
  - {name: feed, partitions: 2}
`)
	c := dial(t, srv)
	dir := t.TempDir()
	cfgs, err := config.ParseProcessors("t.yaml", []byte(fmt.Sprintf(`
processors:
  - name: shared
    from: {pipeline: feed}
    sink: {type: file, dir: %q}
    rate: 5000/s
    batch: {max_events: 100, linger: 2ms}
`, dir)))
	if err != nil {
		t.Fatal(err)
	}
	co := group.NewCoordinator(group.Config{})
	defer co.Close()
	grp := processor.LocalGroup{Co: co, Store: srv.Offsets}
	newMember := func(id string) *processor.Manager {
		m := processor.NewManager(processor.Options{Source: processor.NodeSource{Node: srv.Node}, Group: grp, ClientID: id})
		if err := m.Start(context.Background(), cfgs); err != nil {
			t.Fatal(err)
		}
		return m
	}
	const n = 12000
	produce(t, c, "feed", n, func(i int) client.Event {
		return client.Event{Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte("v")}
	})
	a := newMember("a")
	waitFor(t, "the first member to deliver", time.Minute, func() bool { return a.List()[0].Delivered > 1000 })
	b := newMember("b")
	defer b.Close()
	parts := func(m *processor.Manager) int {
		info, _ := m.Describe("shared")
		return len(info.Partitions)
	}
	// Each member reads its share, and no partition is read by both.
	waitFor(t, "the partitions spread over both members", time.Minute, func() bool {
		pa, pb := parts(a), parts(b)
		return pa > 0 && pb > 0 && pa+pb == 6
	})
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every event in the files", time.Minute, func() bool { lines, _ := readFiles(t, dir); return len(lines) >= n })
	want := map[string]bool{}
	for _, r := range readAll(t, c, "feed") {
		want[key(r.Pipeline, r.Partition, r.Offset)] = true
	}
	lines, _ := readFiles(t, dir)
	got := map[string]int{}
	for _, l := range lines {
		got[key(l.Pipeline, l.Partition, l.Offset)]++
	}
	exactlyOnce(t, "two members", got, want)
	if info, _ := b.Describe("shared"); len(info.Partitions) != 6 {
		t.Fatalf("after the first member left, the second reads %d partitions, want all 6", len(info.Partitions))
	}
}
