package server

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/meta"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/replica"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/router"
)

// The migrator moves stored events out of a hub whose policy no longer
// allows their pipeline (docs/sovereignty.md). Each node migrates the
// buffers it leads, a step at a time, each step checkpointed in the
// metadata log:
//
//  1. plan (move.plan): the source range [From, To), whole batches from
//     the buffer's start, up to moveChunk bytes; the destination, a
//     partition of the same lane in another hub of the same jurisdiction
//     that is up and allows the pipeline; and, as the plan is applied, a
//     producer id of its own.
//  2. copy: the records, with a sense.from header naming their source,
//     appended to the destination under that producer id with the source
//     offsets as sequence numbers, one batch at a time, each checked like a
//     Kafka producer's (every record's mask against the destination hub)
//     and acknowledged by a quorum of the destination's replicas.
//  3. done (move.done): the destination offsets, the record count and a
//     checksum; the audit log of moves is these records.
//  4. trim: the source buffer's start moves past the range on every
//     replica (replica.Group.Trim), once every replica holds it.
//
// A node that stops at any point leaves the step where the metadata log
// says it is; whichever node leads the source next resumes it: a plan not
// done is copied again (the destination recognizes each batch already
// stored by its producer id and sequence, and stores it once), a step done
// but not trimmed is trimmed. Ingest goes on throughout.

// Migrator tuning.
const (
	migrateEvery = 200 * time.Millisecond
	moveChunk    = 1 << 20  // source bytes per step
	moveBatch    = 16 << 10 // bytes per destination batch
	// moveRate bounds the bytes a node's migrator writes a second, so
	// that ingest keeps its latency: the copies share the destination's
	// appends and fsyncs with new events.
	moveRate = 4 << 20
	// headerFrom names where a moved record came from:
	// pipeline/hub/partition/offset.
	headerFrom = "sense.from"
)

// migrate runs the migrator until quit.
func (m *metaRuntime) migrate() {
	defer close(m.migrated)
	t := time.NewTicker(migrateEvery)
	defer t.Stop()
	flagged := map[string]bool{}
	idle := map[string]int64{}
	for {
		select {
		case <-m.quit:
			return
		case <-t.C:
		}
		m.migrateOnce(flagged, idle)
	}
}

// migrateOnce makes one step on every buffer this node leads in a hub
// that denies its pipeline. flagged holds the sources with no destination
// (alerted once), idle those that hold only control records up to the
// offset given (read again only when the buffer grows).
func (m *metaRuntime) migrateOnce(flagged map[string]bool, idle map[string]int64) {
	n := m.n
	table := n.Table()
	for _, spec := range n.Pipelines() {
		routes := table.Pipeline(spec.Name)
		if routes == nil {
			continue
		}
		parts, code := n.Partitions(spec.Name)
		if code != result.OK {
			continue
		}
		for _, p := range parts {
			if routes.Allowed(p.HubIndex) || p.Start >= p.HighWatermark {
				continue
			}
			if l, ok := n.Leadership(spec.Name, p.Partition); !ok || !l.IsLeader() {
				continue
			}
			select {
			case <-m.quit:
				return
			default:
			}
			key := spec.Name + "/" + p.Hub + "/" + strconv.Itoa(int(p.Partition))
			if idle[key] >= p.HighWatermark {
				continue
			}
			err := m.step(key, spec.Name, p, parts, table)
			var nothing errNothingToMove
			switch {
			case errors.As(err, &nothing):
				idle[key] = nothing.to
			case errors.Is(err, errNoDestination):
				if !flagged[key] {
					flagged[key] = true
					m.c.log.Error("stored events must leave their hub but no compliant buffer can take them; they stay, flagged, until a hub of their jurisdiction allows the pipeline",
						"pipeline", spec.Name, "hub", p.Hub, "partition", p.Partition, "records_from", p.Start, "records_to", p.HighWatermark)
					n.AlertNoCompliantHub(spec.Name, table.Hub(p.HubIndex).Jurisdiction, p.Lane.String(), "migration: "+err.Error())
				}
			case errors.Is(err, replica.ErrTrimBehind):
				// A replica of the source is behind or down: the trim waits.
			case err != nil:
				m.c.log.Warn("migration step failed; retried", "source", key, "err", err)
			default:
				delete(flagged, key)
			}
		}
	}
}

// migrateHook, when set (by tests, export_test.go), is called after each
// batch the migrator copies; an error stops the step there, as a crash
// would.
var migrateHook atomic.Pointer[func(stage string) error]

// errNothingToMove: a source holds only control records up to offset to.
type errNothingToMove struct{ to int64 }

func (e errNothingToMove) Error() string {
	return fmt.Sprintf("only control records up to offset %d", e.to)
}

var errNoDestination = errors.New("no other hub of the same jurisdiction is up and allows the pipeline")

// step makes one migration step of a source buffer (see above).
func (m *metaRuntime) step(key, pipeline string, src node.Partition, parts []node.Partition, table *router.Table) error {
	cur, ok := m.store.Move(key)
	switch {
	case ok && cur.Done && cur.To > src.Start:
		return m.n.Trim(pipeline, src.Partition, cur.To)
	case ok && !cur.Done:
		return m.copyStep(cur)
	}
	dest, ok := destination(src, parts, table, pipeline)
	if !ok {
		return errNoDestination
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, _, _, code := m.n.Fetch(ctx, pipeline, src.Partition, src.Start, moveChunk, nil)
	if code != result.OK {
		return result.New(code, fmt.Sprintf("read %s at %d", key, src.Start))
	}
	to, data := src.Start, false
	for p := b; len(p) > 0; {
		h, err := batch.ParseHeader(p)
		if err != nil {
			return err
		}
		to = h.NextOffset()
		data = data || h.Attributes&batch.AttrControl == 0
		p = p[h.Size():]
	}
	switch {
	case to <= src.Start:
		return nil
	case !data:
		// Only control records (raft's term markers, trims): nothing to
		// move, and trimming them would write one more.
		return errNothingToMove{to}
	}
	st, err := m.propose(meta.Command{Op: meta.OpMovePlan, Move: &meta.Move{Source: key, Pipeline: pipeline, Hub: src.Hub,
		From: src.Start, To: to, Dest: dest.Partition, DestHub: dest.Hub, Cause: m.routed.Load()}})
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	return m.copyStep(st.Moves[key])
}

// destination picks the partition a source's records move to: of the same
// lane, in another hub of the source hub's jurisdiction (or of any, "*")
// that is up and allows the pipeline; the same one for a source every
// time the table is the same.
func destination(src node.Partition, parts []node.Partition, table *router.Table, pipeline string) (node.Partition, bool) {
	routes := table.Pipeline(pipeline)
	srcHub := table.Hub(src.HubIndex)
	var cands []node.Partition
	for _, p := range parts {
		h := table.Hub(p.HubIndex)
		if p.HubIndex == src.HubIndex || p.Lane != src.Lane || h.Status != router.Up || !routes.Allowed(p.HubIndex) {
			continue
		}
		if h.Mask&srcHub.Mask != srcHub.Mask {
			continue // a record of the source may hold only its hub's jurisdiction
		}
		cands = append(cands, p)
	}
	if len(cands) == 0 {
		return node.Partition{}, false
	}
	return cands[src.Index%len(cands)], true
}

// copyStep copies a planned step's records and records it done.
func (m *metaRuntime) copyStep(mv meta.Move) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srcPart, err := strconv.Atoi(mv.Source[len(mv.Pipeline)+len(mv.Hub)+2:])
	if err != nil {
		return fmt.Errorf("move of %q: %w", mv.Source, err)
	}
	crc := crc32.MakeTable(crc32.Castagnoli)
	var sum uint32
	var count int64
	destFrom, destTo := int64(-1), int64(-1)
	var bld batch.Builder
	var pending int
	var dec []byte
	var hdrs []batch.RawHeader
	flush := func() error {
		if pending == 0 {
			return nil
		}
		out := bld.Finish()
		t0 := time.Now()
		base, code, why := m.n.AppendMoved(ctx, mv.Pipeline, mv.Dest, out)
		pending = 0
		if pace := time.Duration(len(out)) * time.Second / moveRate; time.Since(t0) < pace {
			time.Sleep(pace - time.Since(t0))
		}
		switch code {
		case result.OK:
			if destFrom < 0 {
				destFrom = base
			}
			h, _ := batch.ParseHeader(out)
			destTo = base + int64(h.LastDelta) + 1
			if f := migrateHook.Load(); f != nil {
				return (*f)("copied")
			}
			return nil
		case result.DuplicateSequence:
			return nil // stored by an attempt before a restart
		}
		return result.New(code, fmt.Sprintf("copy to %s/%d: %s", mv.Pipeline, mv.Dest, why))
	}
	for off := mv.From; off < mv.To; {
		b, _, _, code := m.n.Fetch(ctx, mv.Pipeline, int32(srcPart), off, moveChunk, nil)
		if code != result.OK {
			return result.New(code, fmt.Sprintf("read %s at %d", mv.Source, off))
		}
		if len(b) == 0 {
			return fmt.Errorf("read %s at %d: nothing below the high watermark", mv.Source, off)
		}
		for p := b; len(p) > 0 && off < mv.To; {
			h, err := batch.ParseHeader(p)
			if err != nil {
				return err
			}
			raw := p[:h.Size()]
			p = p[h.Size():]
			off = h.NextOffset()
			if h.Attributes&batch.AttrControl != 0 {
				continue
			}
			records := raw[batch.HeaderSize:]
			if h.Compression() != batch.CompressionNone {
				if dec, err = batch.Decompress(dec[:0], raw); err != nil {
					return err
				}
				records = dec
			}
			var it batch.Iter
			if err := it.ResetRecords(records, h.RecordCount); err != nil {
				return err
			}
			for it.Next() {
				r := it.Record()
				srcOff := h.BaseOffset + int64(r.OffsetDelta)
				if pending > 0 && bld.Size() >= moveBatch {
					if err := flush(); err != nil {
						return err
					}
				}
				if pending == 0 {
					bld.Reset(mv.PID, 0, int32(srcOff&math.MaxInt32))
				}
				hdrs = hdrs[:0]
				hi := r.Headers()
				for k, v, ok := hi.Next(); ok; k, v, ok = hi.Next() {
					if string(k) != headerFrom {
						hdrs = append(hdrs, batch.RawHeader{Key: k, Value: v})
					}
				}
				hdrs = append(hdrs, batch.RawHeader{Key: []byte(headerFrom), Value: []byte(mv.Source + "/" + strconv.FormatInt(srcOff, 10))})
				bld.AddRaw(h.BaseTimestamp+r.TimestampDelta, r.Key, r.Value, hdrs)
				pending++
				count++
				sum = crc32.Update(sum, crc, r.Key)
				sum = crc32.Update(sum, crc, r.Value)
			}
			if err := it.Err(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	done := mv
	done.DestFrom, done.DestTo, done.Records, done.Checksum = destFrom, destTo, count, sum
	if _, err := m.propose(meta.Command{Op: meta.OpMoveDone, Move: &done}); err != nil {
		return fmt.Errorf("record the step done: %w", err)
	}
	m.moved.Add(float64(count))
	m.c.log.Info("events moved out of a hub that no longer allows their pipeline", "source", mv.Source, "from", mv.From, "to", mv.To,
		"dest_partition", mv.Dest, "dest_hub", mv.DestHub, "dest_from", destFrom, "dest_to", destTo, "records", count)
	return m.n.Trim(mv.Pipeline, int32(srcPart), mv.To)
}
