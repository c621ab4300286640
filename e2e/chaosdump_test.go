package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sensehq/sense/batch"
)

// readHeaders reads the header of every batch in the segment files of a
// stopped node's buffer directory, in offset order.
func readHeaders(dir string) ([]batch.Header, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		return nil, err
	}
	slices.Sort(names) // named by base offset, zero-padded
	var out []batch.Header
	for _, name := range names {
		if strings.HasSuffix(name, ".pending.log") {
			continue
		}
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		for len(b) >= batch.HeaderSize {
			h, err := batch.ParseHeader(b)
			if err != nil || h.Length == 0 || h.Size() > len(b) {
				break // the preallocated tail
			}
			out = append(out, h)
			b = b[h.Size():]
		}
	}
	return out, nil
}

func describeBatch(h batch.Header) string {
	what := "data"
	if h.Attributes&batch.AttrControl != 0 {
		what = "control"
	}
	return fmt.Sprintf("[%d..%d] %s, term %d, producer %d epoch %d, sequences %d..%d, %d records",
		h.BaseOffset, h.LastOffset(), what, h.LeaderEpoch, h.ProducerID, h.ProducerEpoch, h.BaseSequence, h.LastSequence(), h.RecordCount)
}

// explainDuplicates logs, for the offsets of duplicated records (per
// partition, as n1 holds them), the headers of the batches from two
// offsets before to two after each run of them, as each stopped node's
// segment files hold them, and the lines of the producer's log about
// batches it failed, reset or was told were duplicates. The same producer
// id, epoch and sequences twice means the brokers' deduplication let a
// retry through; new sequences or a new epoch mean the producer sent the
// records again after an answer that made it give up on the first copy.
func explainDuplicates(t *testing.T, nodes []*node, dupAt map[int32][]int64, clientLog string) {
	t.Helper()
	for p, offs := range dupAt {
		slices.Sort(offs)
		var spans [][2]int64
		for _, o := range offs {
			if len(spans) > 0 && o-spans[len(spans)-1][1] <= 8 {
				spans[len(spans)-1][1] = o
				continue
			}
			spans = append(spans, [2]int64{o, o})
		}
		for i, nd := range nodes {
			hs, err := readHeaders(filepath.Join(nd.data, "hubs", "tangier", fmt.Sprintf("chaos-%d", p)))
			if err != nil {
				t.Logf("n%d: read batch headers: %v", i+1, err)
				continue
			}
			for _, s := range spans {
				var lines []string
				for _, h := range hs {
					if h.LastOffset() >= s[0]-2 && h.BaseOffset <= s[1]+2 {
						lines = append(lines, describeBatch(h))
					}
				}
				t.Logf("n%d partition %d, duplicated records at offsets %d..%d:\n\t%s", i+1, p, s[0], s[1], strings.Join(lines, "\n\t"))
			}
		}
	}
	if b, err := os.ReadFile(clientLog); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "errored") || strings.Contains(line, "duplicate") || strings.Contains(line, "reset") {
				t.Logf("producer: %s", line)
			}
		}
	}
}

// keepChaosLogs copies every node's logs (one file per start) and the
// producer's into dir.
func keepChaosLogs(t *testing.T, dir string, nodes []*node, clientLog string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("keep logs: %v", err)
		return
	}
	keep := func(from, name string) {
		b, err := os.ReadFile(from)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name), b, 0o644)
		}
		if err != nil {
			t.Logf("keep logs: %v", err)
		}
	}
	for i, nd := range nodes {
		for j, l := range nd.logs {
			keep(l, fmt.Sprintf("n%d-%d.log", i+1, j))
		}
	}
	keep(clientLog, "franz-go.log")
	t.Logf("node and producer logs kept in %s", dir)
}
