package node

import (
	"context"
	"errors"
	"fmt"
	"github.com/sensehq/sense/seglog"
	"slices"
	"sort"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
)

// Local is implemented by a Buffer that may hold no data on this node (a
// cluster node's handle on a buffer whose replicas are elsewhere):
// HoldsData reports whether this node keeps the buffer's log.
type Local interface {
	HoldsData() bool
}

// HubAudit is what Audit found in the buffers of one hub on this node.
type HubAudit struct {
	Hub          string
	Jurisdiction string
	Buffers      int
	Records      int64
	Bytes        int64 // of the batches read, as stored
	// Masks counts records by their stored mask, formatted ("MA,SN").
	Masks map[string]int64
	// Violations are records stored in this hub although their mask does
	// not include its jurisdiction, or that carry no mask at all: there
	// must be none. Examples name the first few.
	Violations int64
	Examples   []string
	// AwaitingMigration counts records due to move: of pipelines the
	// hub's policy now denies, or stored under a former designation of
	// the hub (Former) that their mask allows and the current one not.
	AwaitingMigration int64
	// Former are the hub's former designations.
	Former []string
	// Corrupt counts buffers whose reading stopped at a batch that fails
	// its CRC or framing; Examples says where.
	Corrupt int64
}

// maxExamples bounds HubAudit.Examples.
const maxExamples = 10

// auditChunk is how much one read of an audit takes.
const auditChunk = 1 << 20

// Audit reads every record this node stores, of one pipeline or of all
// (pipeline ""), up to each buffer's high watermark, and checks that each
// may rest where it is: that its stored mask (the sense.j header every
// edge writes) includes its hub's jurisdiction. Every batch's CRC is
// checked as it is read. Buffers this node holds no data of (Local) are
// skipped: their nodes audit them.
func (n *Node) Audit(ctx context.Context, pipeline string) ([]HubAudit, error) {
	s := n.st.Load()
	hubs := map[string]*HubAudit{}
	order := []string{}
	var names []string
	for name := range s.pipelines.All() {
		if pipeline == "" || name == pipeline {
			names = append(names, name)
		}
	}
	if pipeline != "" && len(names) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrUnknownPipeline, pipeline)
	}
	sort.Strings(names)
	former := map[string]jurisdiction.Mask{}
	formerNames := map[string][]string{}
	for _, h := range n.Hubs() {
		for _, j := range h.Former {
			if m, err := n.reg.Parse(j); err == nil {
				former[h.Name] |= m
			}
		}
		formerNames[h.Name] = h.Former
	}
	var buf []byte
	for _, name := range names {
		p := s.pipeline(name)
		if p.refused != nil {
			continue
		}
		for i, rb := range p.routes.Partitions() {
			b := p.bufs[i]
			if l, ok := b.(Local); ok && !l.HoldsData() {
				continue
			}
			hub := s.table.Hub(rb.HubIndex)
			ha := hubs[hub.Name]
			if ha == nil {
				ha = &HubAudit{Hub: hub.Name, Jurisdiction: hub.Jurisdiction, Former: formerNames[hub.Name], Masks: map[string]int64{}}
				hubs[hub.Name] = ha
				order = append(order, hub.Name)
			}
			ha.Buffers++
			denied := !p.routes.Allowed(rb.HubIndex)
			var err error
			buf, err = n.auditBuffer(ctx, ha, hub.Mask, former[hub.Name], name, rb.Partition, b, denied, buf)
			if err != nil {
				return nil, err
			}
		}
	}
	out := make([]HubAudit, 0, len(order))
	for _, h := range order {
		out = append(out, *hubs[h])
	}
	slices.SortFunc(out, func(a, b HubAudit) int {
		if a.Hub < b.Hub {
			return -1
		}
		if a.Hub > b.Hub {
			return 1
		}
		return 0
	})
	return out, nil
}

// auditBuffer reads one buffer into ha. It returns only ctx's error; a
// batch that does not read is counted as Corrupt and ends the buffer.
func (n *Node) auditBuffer(ctx context.Context, ha *HubAudit, hubMask, formerMask jurisdiction.Mask, pipeline string, partition int32, b Buffer, denied bool, buf []byte) ([]byte, error) {
	example := func(format string, args ...any) {
		if len(ha.Examples) < maxExamples {
			ha.Examples = append(ha.Examples, fmt.Sprintf("%s/%d ", pipeline, partition)+fmt.Sprintf(format, args...))
		}
	}
	var dec []byte
	var it batch.Iter
	off, hw := b.StartOffset(), b.HighWatermark()
	for off < hw {
		if err := ctx.Err(); err != nil {
			return buf, err
		}
		var err error
		buf, err = b.Read(buf[:0], off, auditChunk)
		if err != nil && errors.Is(err, seglog.ErrOffsetOutOfRange) && b.StartOffset() > off {
			// Trimmed while the audit read (retention, a migration step
			// done): what went is no longer stored; go on from the start.
			off = b.StartOffset()
			continue
		}
		if err != nil {
			ha.Corrupt++
			example("offset %d: %v", off, err)
			return buf, nil
		}
		if len(buf) == 0 {
			break
		}
		for p := buf; len(p) > 0; {
			h, err := batch.ParseHeader(p)
			if err != nil || len(p) < h.Size() {
				ha.Corrupt++
				example("offset %d: a batch does not parse: %v", off, err)
				return buf, nil
			}
			ha.Bytes += int64(h.Size())
			if h.Attributes&batch.AttrControl == 0 {
				records := p[batch.HeaderSize:h.Size()]
				if h.Compression() != batch.CompressionNone {
					if dec, err = batch.Decompress(dec[:0], p[:h.Size()]); err != nil {
						ha.Corrupt++
						example("offset %d: %v", h.BaseOffset, err)
						return buf, nil
					}
					records = dec
				}
				if err := it.ResetRecords(records, h.RecordCount); err != nil {
					ha.Corrupt++
					example("offset %d: %v", h.BaseOffset, err)
					return buf, nil
				}
				for it.Next() {
					r := it.Record()
					ha.Records++
					mask, found := storedMask(r)
					if !found {
						ha.Violations++
						example("offset %d: no valid %s header: the record's jurisdiction is not provable", h.BaseOffset+int64(r.OffsetDelta), event.HeaderMask)
						continue
					}
					ha.Masks[n.reg.Format(mask)]++
					switch {
					case mask&hubMask == 0 && mask&formerMask != 0:
						ha.AwaitingMigration++ // lawful under a former designation
					case mask&hubMask == 0:
						ha.Violations++
						example("offset %d: mask %s, stored in hub %s (%s)", h.BaseOffset+int64(r.OffsetDelta), n.reg.Format(mask), ha.Hub, ha.Jurisdiction)
					case denied:
						ha.AwaitingMigration++
					}
				}
				if err := it.Err(); err != nil {
					ha.Corrupt++
					example("offset %d: %v", h.BaseOffset, err)
					return buf, nil
				}
			}
			off = h.NextOffset()
			p = p[h.Size():]
		}
	}
	return buf, nil
}

// storedMask returns a record's sense.j mask.
func storedMask(r *batch.Record) (jurisdiction.Mask, bool) {
	hi := r.Headers()
	for k, v, ok := hi.Next(); ok; k, v, ok = hi.Next() {
		if string(k) == event.HeaderMask {
			m, err := event.DecodeMaskHeader(v)
			return m, err == nil
		}
	}
	return 0, false
}
