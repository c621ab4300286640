package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/sensehq/sense/admin"
)

// TestPrintClusterStatusLeaders: each buffer's row shows the metadata's
// last known leader and term beside the live ones, and whether they
// agree; a buffer no answering node holds shows "?" for its live view.
func TestPrintClusterStatusLeaders(t *testing.T) {
	ci := &admin.ClusterInfo{Self: "n1", Buffers: []admin.BufferStatus{
		{Key: "__offsets", Leader: "n1", Term: 2, Held: true},
		{Key: "p/a/0", Leader: "n2", Term: 3, Held: true, MetaLeader: "n2", MetaTerm: 3},
		{Key: "p/a/1", Leader: "n3", Term: 4, Held: true, MetaLeader: "n2", MetaTerm: 3},
		{Key: "p/b/2", HighWatermark: -1, MetaLeader: "n4", MetaTerm: 1,
			Replicas: []admin.ReplicaStatus{{Node: "n4", Match: -1, Lag: -1}}},
	}}
	var out bytes.Buffer
	printClusterStatus(&out, ci)
	rows := map[string][]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			rows[f[0]] = f
		}
	}
	for key, want := range map[string]string{
		"BUFFER":    "BUFFER LEADER TERM METADATA (leader, term) AGREE HIGH WATERMARK REPLICAS (match offset, lag)",
		"__offsets": "__offsets n1 2 - - 0 -",
		"p/a/0":     "p/a/0 n2 3 n2 3 yes 0 -",
		"p/a/1":     "p/a/1 n3 4 n2 3 no 0 -",
		"p/b/2":     "p/b/2 ? ? n4 1 ? ? n4 ?",
	} {
		if got := strings.Join(rows[key], " "); got != want {
			t.Errorf("row %s:\n got %q\nwant %q", key, got, want)
		}
	}
}
