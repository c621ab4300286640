package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/jurisdiction"
	"github.com/sensehq/sense/meta"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/replica"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/router"
)

// The migrator moves stored events out of a hub that may no longer hold
// them (docs/sovereignty.md): every event of a pipeline the hub's policy
// now denies ("policy"), and, once a hub is re-designated to another
// jurisdiction, every event stored before that the new one does not allow
// ("designation"). Each node migrates the buffers it leads, a step at a
// time, each step checkpointed in its ledger (moveLedger): the metadata
// log in a cluster, the move log of package movelog on a node alone, which
// leads every buffer it holds:
//
//  1. plan (move.plan): the source range [From, To), whole batches from
//     the buffer's start, up to moveChunk bytes; the routes, destination
//     partitions of the same lane in hubs that are up and allow the
//     pipeline, in order of preference (the source itself first when its
//     hub still allows the pipeline: a record it may keep is appended to
//     it again); and, as the plan is applied, a producer id of its own.
//     Each record goes to the first route whose jurisdiction its stored
//     mask allows; the range ends before the first batch holding a record
//     no route can take.
//  2. copy: the records, with a sense.from header naming their source,
//     appended to their routes under that producer id with the source
//     offsets as sequence numbers, one batch at a time, each checked like a
//     Kafka producer's (every record's mask against the destination hub)
//     and acknowledged by a quorum of the destination's replicas.
//  3. verify, then done (move.done): each route's destination sums, where
//     it is stored, what the step's producer id wrote there since the plan
//     (node.Digest: numbers only cross nodes); it must match what was
//     copied. Then per route the destination offsets, the record count and
//     a checksum; the audit log of moves is these records.
//  4. trim: the source buffer's start moves past the range on every
//     replica (replica.Group.Trim), once every replica holds it; until
//     then the next steps go on from the end of the last one. On a node
//     alone, the copies are synced first (node.Sync: an acknowledgement
//     may precede fdatasync under the interval and never policies), then
//     the source's log moves its start (seglog's Trim).
//
// A re-designation's campaign covers a source up to Until, the end of the
// last record stored there that the new jurisdiction does not allow, as a
// scan finds it designationSettle after the change (when no node routes
// by the former table any more); Until is kept in each step's plan, so
// that the next leader goes on with the same campaign.
//
// A node that stops at any point leaves the step where its ledger says it
// is; whichever node leads the source next (a node alone, once restarted)
// resumes it: a plan not done is copied again (the destination recognizes
// each batch already stored by its producer id and sequence, and stores it
// once), a step done but not trimmed is trimmed. Ingest goes on
// throughout.

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
	// designationSettle is how long after a re-designation its campaign
	// starts: longer than staleAfter, after which a node that has not
	// applied the change refuses events.
	designationSettle = staleAfter + 3*time.Second
)

// Reasons of a move (meta.Move.Reason).
const (
	reasonPolicy      = "policy"
	reasonDesignation = "designation"
)

// moveLedger is where the migrator keeps its checkpoints, and what it
// reads of the routing metadata.
type moveLedger interface {
	// Move returns a source buffer's last step.
	Move(source string) (meta.Move, bool)
	// Plan records a step planned (meta.OpMovePlan) and returns it as
	// recorded, with its producer id, once this node may act on it.
	Plan(meta.Move) (meta.Move, error)
	// Done records a step copied and verified (meta.OpMoveDone).
	Done(meta.Move) error
	// Moves is the audit log of moves: every step done, in order.
	Moves() []meta.Move
	// Hub returns a hub's designation state (meta.HubState's Former and
	// DesignatedAt).
	Hub(name string) (meta.HubState, bool)
	// Version is the routing table version this node routes with.
	Version() uint64
}

// migrator is one node's migrator. Its goroutine is started by start and
// ended by stop, which its owner (the metadata runtime in a cluster, the
// server on a node alone) calls before the node closes.
type migrator struct {
	n      *node.Node
	log    *slog.Logger
	ledger moveLedger
	// alone: every buffer of the node is led here (a node alone's
	// buffers are not replicated and have no Leadership).
	alone bool
	moved prometheus.Counter

	quit chan struct{}
	done chan struct{}
	once sync.Once
}

// newMigrator returns a migrator of n keeping its steps in ledger, and
// registers its metric.
func newMigrator(n *node.Node, log *slog.Logger, ledger moveLedger, alone bool) *migrator {
	m := &migrator{n: n, log: log, ledger: ledger, alone: alone, quit: make(chan struct{}), done: make(chan struct{})}
	m.moved = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "sense_migrated_records_total",
		Help: "Records this node moved out of hubs whose policy no longer allows their pipeline.",
	})
	n.Metrics.Registry.MustRegister(m.moved)
	return m
}

// start runs the migrator's goroutine.
func (m *migrator) start() { go m.run() }

// stop ends the migrator's goroutine and waits for it, once the step it is
// on ends (a step is at most moveChunk bytes; whatever it left undone is
// resumed by the next start, as after a crash).
func (m *migrator) stop() {
	m.once.Do(func() { close(m.quit) })
	<-m.done
}

// run migrates until quit.
func (m *migrator) run() {
	defer close(m.done)
	t := time.NewTicker(migrateEvery)
	defer t.Stop()
	ms := migrateState{flagged: map[string]bool{}, idle: map[string]int64{}, clean: map[string]int64{}}
	for {
		select {
		case <-m.quit:
			return
		case <-t.C:
		}
		m.migrateOnce(&ms)
	}
}

// migrateState is what the migrator remembers between rounds, by source
// key: flagged, the sources whose records no compliant buffer can take
// (alerted once); idle, those that hold only control records up to the
// offset given (read again only when the buffer grows); clean, those a
// re-designation's scan found holding nothing to move (the DesignatedAt
// of the re-designation).
type migrateState struct {
	flagged map[string]bool
	idle    map[string]int64
	clean   map[string]int64
}

// migrateOnce makes one step on every buffer this node leads that holds
// records due to move, or a step under way.
func (m *migrator) migrateOnce(ms *migrateState) {
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
			if p.Start >= p.HighWatermark {
				continue
			}
			if !m.leads(spec.Name, p.Partition) {
				continue
			}
			select {
			case <-m.quit:
				return
			default:
			}
			key := spec.Name + "/" + p.Hub + "/" + strconv.Itoa(int(p.Partition))
			err := m.step(key, spec.Name, p, parts, table, ms)
			var nothing errNothingToMove
			switch {
			case errors.Is(err, errNoWork):
			case errors.As(err, &nothing):
				ms.idle[key] = nothing.to
			case errors.Is(err, errNoDestination):
				if !ms.flagged[key] {
					ms.flagged[key] = true
					m.log.Error("stored events must leave their hub but no compliant buffer can take them; they stay, flagged, until a hub their mask allows takes the pipeline",
						"pipeline", spec.Name, "hub", p.Hub, "partition", p.Partition, "records_from", p.Start, "records_to", p.HighWatermark)
					n.AlertNoCompliantHub(spec.Name, table.Hub(p.HubIndex).Jurisdiction, p.Lane.String(), "migration: "+err.Error())
				}
			case errors.Is(err, replica.ErrTrimBehind):
				// A replica of the source is behind or down: the trim waits.
			case err != nil:
				m.log.Warn("migration step failed; retried", "source", key, "err", err)
			default:
				delete(ms.flagged, key)
			}
		}
	}
}

// leads reports whether this node leads a partition: a cluster node the
// buffers whose raft group it leads, a node alone every buffer.
func (m *migrator) leads(pipeline string, partition int32) bool {
	l, ok := m.n.Leadership(pipeline, partition)
	if m.alone && !ok {
		return true
	}
	return ok && l.IsLeader()
}

// migrateHook, when set (by tests, export_test.go), is called after each
// batch the migrator copies (stage "copied") and before it trims a source
// past a step done ("trim"); an error stops the step there, as a crash
// would.
var migrateHook atomic.Pointer[func(stage string) error]

// errNothingToMove: a source holds only control records up to offset to.
type errNothingToMove struct{ to int64 }

func (e errNothingToMove) Error() string {
	return fmt.Sprintf("only control records up to offset %d", e.to)
}

var (
	errNoDestination = errors.New("no hub that is up and allows the pipeline is of a jurisdiction the records' masks allow")
	// errNoWork: the source holds nothing due to move.
	errNoWork = errors.New("nothing to move")
)

// step makes one migration step of a source buffer (see above).
func (m *migrator) step(key, pipeline string, src node.Partition, parts []node.Partition, table *router.Table, ms *migrateState) error {
	cur, ok := m.ledger.Move(key)
	switch {
	case ok && !cur.Done:
		return m.copyStep(cur)
	case ok && cur.Done && cur.To > src.Start:
		// The last step is copied, not trimmed yet. While a replica of
		// the source is behind or down, its trim waits and the next
		// steps go on from where it ended (a later trim covers them
		// all): the source keeps its records until every replica has
		// them, but migration does not stall.
		err := m.trim(pipeline, src.Partition, cur.To)
		if !errors.Is(err, replica.ErrTrimBehind) || cur.To >= src.HighWatermark {
			return err
		}
		src.Start = cur.To
	}
	if ms.idle[key] >= src.HighWatermark {
		return errNoWork
	}
	plan := meta.Move{Source: key, Pipeline: pipeline, Hub: src.Hub, From: src.Start, Cause: m.ledger.Version()}
	until := src.HighWatermark
	hub := table.Hub(src.HubIndex)
	denied := !table.Pipeline(pipeline).Allowed(src.HubIndex)
	switch hs, _ := m.ledger.Hub(src.Hub); {
	case denied:
		plan.Reason = reasonPolicy
	case hs.DesignatedAt == 0 || len(hs.Former) == 0 || ms.clean[key] == hs.DesignatedAt:
		return errNoWork
	case ok && cur.Reason == reasonDesignation && cur.Since == hs.DesignatedAt:
		// The campaign under way.
		if src.Start >= cur.Until {
			return errNoWork
		}
		plan.Reason, plan.Since, plan.Until = reasonDesignation, cur.Since, cur.Until
		until = cur.Until
	default:
		if time.Since(time.Unix(0, hs.DesignatedAt)) < designationSettle {
			return errNoWork
		}
		end, err := m.lastForeign(pipeline, src, hub.Mask)
		if err != nil {
			return err
		}
		if end <= src.Start {
			ms.clean[key] = hs.DesignatedAt
			return errNoWork
		}
		m.log.Info("hub re-designated: its events the new jurisdiction does not allow are moved", "source", key,
			"jurisdiction", hub.Jurisdiction, "former", hs.Former, "from", src.Start, "until", end)
		plan.Reason, plan.Since, plan.Until = reasonDesignation, hs.DesignatedAt, end
		until = end
	}
	plan.Routes = m.routes(src, parts, table, pipeline, denied)
	for i, r := range plan.Routes {
		d, err := m.n.Digest(pipeline, r.Dest, -1, 0)
		if err != nil {
			return fmt.Errorf("plan: the end of %s/%d: %w", pipeline, r.Dest, err)
		}
		plan.Routes[i].Start = d.End
	}
	masks, err := m.routeMasks(plan.Routes)
	if err != nil {
		return err
	}
	// The range: whole batches from the start, up to moveChunk bytes and
	// until, ending before the first batch holding a record no route takes.
	to, data, blocked := src.Start, false, false
	dataBefore := false // data, before the batch being read
	err = m.walk(pipeline, src.Partition, src.Start, until, moveChunk, func(h *batch.Header, r *batch.Record) bool {
		if r == nil {
			if h.BaseOffset >= until {
				return false
			}
			dataBefore = data
			to = h.NextOffset()
			data = data || h.Attributes&batch.AttrControl == 0
			return true
		}
		if routeOf(r, masks) < 0 {
			to, data, blocked = h.BaseOffset, dataBefore, true
			return false
		}
		return true
	})
	if err != nil {
		return err
	}
	switch {
	case to <= src.Start && blocked:
		return errNoDestination
	case to <= src.Start:
		return errNoWork
	case !data:
		// Only control records (raft's term markers, trims): nothing to
		// move, and trimming them would write one more.
		return errNothingToMove{to}
	}
	plan.To = to
	plan.Dest, plan.DestHub = plan.Routes[0].Dest, plan.Routes[0].DestHub
	// Each route's end, where the read-back will start, must not be past
	// what a crash keeps (a buffer of a node alone may acknowledge before
	// it syncs): what the routes hold up to now is made durable first.
	for _, r := range plan.Routes {
		if err := m.n.Sync(pipeline, r.Dest); err != nil {
			return fmt.Errorf("plan: make %s/%d durable: %w", pipeline, r.Dest, err)
		}
	}
	planned, err := m.ledger.Plan(plan)
	if err != nil {
		return fmt.Errorf("plan: %w", err)
	}
	return m.copyStep(planned)
}

// routes lists, in order of preference, where a source's records may move:
// the source itself while its hub allows the pipeline (a record its hub
// may still hold stays in it), then one partition of the same lane in each
// other hub that is up and allows the pipeline, the same ones for a source
// every time the table is the same.
func (m *migrator) routes(src node.Partition, parts []node.Partition, table *router.Table, pipeline string, denied bool) []meta.Route {
	routes := table.Pipeline(pipeline)
	var out []meta.Route
	if !denied {
		out = append(out, meta.Route{Dest: src.Partition, DestHub: src.Hub, Jurisdiction: table.Hub(src.HubIndex).Jurisdiction})
	}
	byHub := map[int][]node.Partition{}
	var hubs []int
	for _, p := range parts {
		h := table.Hub(p.HubIndex)
		if p.HubIndex == src.HubIndex || p.Lane != src.Lane || h.Status != router.Up || !routes.Allowed(p.HubIndex) {
			continue
		}
		if byHub[p.HubIndex] == nil {
			hubs = append(hubs, p.HubIndex)
		}
		byHub[p.HubIndex] = append(byHub[p.HubIndex], p)
	}
	// Hubs of the source's jurisdiction first, then the others, each in
	// table order.
	srcMask := table.Hub(src.HubIndex).Mask
	for _, same := range []bool{true, false} {
		for _, hi := range hubs {
			h := table.Hub(hi)
			if (h.Mask&srcMask == srcMask) != same {
				continue
			}
			ps := byHub[hi]
			p := ps[src.Index%len(ps)]
			out = append(out, meta.Route{Dest: p.Partition, DestHub: h.Name, Jurisdiction: h.Jurisdiction})
		}
	}
	return out
}

// routeMasks returns the masks of routes' jurisdictions.
func (m *migrator) routeMasks(routes []meta.Route) ([]jurisdiction.Mask, error) {
	out := make([]jurisdiction.Mask, len(routes))
	for i, r := range routes {
		mk, err := m.n.Registry().Parse(r.Jurisdiction)
		if err != nil {
			return nil, fmt.Errorf("route to %s (%s): %w", r.DestHub, r.Jurisdiction, err)
		}
		out[i] = mk
	}
	return out, nil
}

// routeOf returns the index of the first route whose mask r's stored mask
// allows, or -1.
func routeOf(r *batch.Record, masks []jurisdiction.Mask) int {
	mask, ok := recordMask(r)
	if !ok {
		return -1
	}
	for i, mk := range masks {
		if mk&mask != 0 {
			return i
		}
	}
	return -1
}

// recordMask returns a record's stored mask (the sense.j header).
func recordMask(r *batch.Record) (jurisdiction.Mask, bool) {
	hi := r.Headers()
	for k, v, ok := hi.Next(); ok; k, v, ok = hi.Next() {
		if string(k) == event.HeaderMask {
			mk, err := event.DecodeMaskHeader(v)
			return mk, err == nil
		}
	}
	return 0, false
}

// lastForeign returns the end of the last batch of a source holding a
// record whose mask the hub's (new) mask does not allow, or the source's
// start when there is none.
func (m *migrator) lastForeign(pipeline string, src node.Partition, hubMask jurisdiction.Mask) (int64, error) {
	end := src.Start
	err := m.walk(pipeline, src.Partition, src.Start, src.HighWatermark, -1, func(h *batch.Header, r *batch.Record) bool {
		if r != nil {
			if mk, ok := recordMask(r); !ok || mk&hubMask == 0 {
				end = h.NextOffset()
			}
		}
		return true
	})
	return end, err
}

// walk reads a partition from offset from up to until (and, when limit >
// 0, about limit bytes), calling fn for each batch (r nil), then for each
// record of a data batch; fn returning false stops the walk.
func (m *migrator) walk(pipeline string, partition int32, from, until int64, limit int, fn func(h *batch.Header, r *batch.Record) bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var dec, buf []byte
	var it batch.Iter
	read := 0
	for off := from; off < until && (limit <= 0 || read < limit); {
		b, _, _, code := m.n.FetchIsolated(ctx, pipeline, partition, off, moveChunk, buf[:0], node.ReadUncommitted)
		if code != result.OK {
			return result.New(code, fmt.Sprintf("read %s/%d at %d", pipeline, partition, off))
		}
		if len(b) == 0 {
			return nil
		}
		buf = b
		read += len(b)
		for p := b; len(p) > 0; {
			h, err := batch.ParseHeader(p)
			if err != nil {
				return err
			}
			raw := p[:h.Size()]
			p = p[h.Size():]
			if h.NextOffset() <= off {
				continue // below the offset asked for
			}
			if !fn(&h, nil) {
				return nil
			}
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
			if err := it.ResetRecords(records, h.RecordCount); err != nil {
				return err
			}
			for it.Next() {
				if !fn(&h, it.Record()) {
					return nil
				}
			}
			if err := it.Err(); err != nil {
				return err
			}
			if off >= until {
				return nil
			}
		}
	}
	return nil
}

// routeCopy is the copying of one route of a step.
type routeCopy struct {
	bld      batch.Builder
	pending  int
	from, to int64
	count    int64
	sum      uint32
}

// copyStep copies a planned step's records and records it done.
func (m *migrator) copyStep(mv meta.Move) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srcPart, err := strconv.Atoi(mv.Source[len(mv.Pipeline)+len(mv.Hub)+2:])
	if err != nil {
		return fmt.Errorf("move of %q: %w", mv.Source, err)
	}
	dests := mv.Destinations()
	masks, err := m.routeMasks(dests)
	if err != nil {
		return err
	}
	rcs := make([]routeCopy, len(dests))
	for i := range rcs {
		rcs[i].from, rcs[i].to = -1, -1
	}
	flush := func(i int) error {
		rc := &rcs[i]
		if rc.pending == 0 {
			return nil
		}
		out := rc.bld.Finish()
		t0 := time.Now()
		base, code, why := m.n.AppendMoved(ctx, mv.Pipeline, dests[i].Dest, out)
		rc.pending = 0
		if pace := time.Duration(len(out)) * time.Second / moveRate; time.Since(t0) < pace {
			time.Sleep(pace - time.Since(t0))
		}
		switch code {
		case result.OK:
			if rc.from < 0 {
				rc.from = base
			}
			h, _ := batch.ParseHeader(out)
			rc.to = base + int64(h.LastDelta) + 1
			if f := migrateHook.Load(); f != nil {
				return (*f)("copied")
			}
			return nil
		case result.DuplicateSequence:
			return nil // stored by an attempt before a restart
		}
		return result.New(code, fmt.Sprintf("copy to %s/%d: %s", mv.Pipeline, dests[i].Dest, why))
	}
	var hdrs []batch.RawHeader
	var werr error
	err = m.walk(mv.Pipeline, int32(srcPart), mv.From, mv.To, -1, func(h *batch.Header, r *batch.Record) bool {
		if r == nil {
			return h.BaseOffset < mv.To
		}
		i := routeOf(r, masks)
		if i < 0 {
			werr = fmt.Errorf("move of %s: the record at offset %d has no route the plan allows", mv.Source, h.BaseOffset+int64(r.OffsetDelta))
			return false
		}
		rc := &rcs[i]
		srcOff := h.BaseOffset + int64(r.OffsetDelta)
		if rc.pending > 0 && rc.bld.Size() >= moveBatch {
			if werr = flush(i); werr != nil {
				return false
			}
		}
		if rc.pending == 0 {
			rc.bld.Reset(mv.PID, 0, int32(srcOff&math.MaxInt32))
		}
		hdrs = hdrs[:0]
		hi := r.Headers()
		for k, v, ok := hi.Next(); ok; k, v, ok = hi.Next() {
			if string(k) != headerFrom {
				hdrs = append(hdrs, batch.RawHeader{Key: k, Value: v})
			}
		}
		hdrs = append(hdrs, batch.RawHeader{Key: []byte(headerFrom), Value: []byte(mv.Source + "/" + strconv.FormatInt(srcOff, 10))})
		rc.bld.AddRaw(h.BaseTimestamp+r.TimestampDelta, r.Key, r.Value, hdrs)
		rc.pending++
		rc.count++
		rc.sum = batch.AddRecord(rc.sum, r.Key, r.Value)
		return true
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return err
	}
	for i := range rcs {
		if err := flush(i); err != nil {
			return err
		}
	}
	// Verify: each destination's leader sums what the step's producer id
	// stored there since the plan; it must be what was copied, record for
	// record, before the source loses anything. A buffer of a node alone
	// is synced first: it may have acknowledged the copies before they
	// were durable.
	for i := range rcs {
		rc := &rcs[i]
		if rc.count == 0 {
			continue
		}
		if err := m.n.Sync(mv.Pipeline, dests[i].Dest); err != nil {
			return fmt.Errorf("make the copies in %s/%d durable: %w", mv.Pipeline, dests[i].Dest, err)
		}
		d, err := m.n.Digest(mv.Pipeline, dests[i].Dest, dests[i].Start, mv.PID)
		if err != nil {
			return fmt.Errorf("verify the copies in %s/%d: %w", mv.Pipeline, dests[i].Dest, err)
		}
		if d.Records != rc.count || d.Checksum != rc.sum {
			return fmt.Errorf("verify the copies in %s/%d from offset %d: it holds %d records of the step (checksum %08x), %d were copied (checksum %08x); the source is kept and the step tried again",
				mv.Pipeline, dests[i].Dest, dests[i].Start, d.Records, d.Checksum, rc.count, rc.sum)
		}
		rc.from, rc.to = d.First, d.Last+1
	}
	done := mv
	done.Routes = slices.Clone(dests)
	done.Records = 0
	for i, rc := range rcs {
		done.Routes[i].DestFrom, done.Routes[i].DestTo, done.Routes[i].Records, done.Routes[i].Checksum = rc.from, rc.to, rc.count, rc.sum
		done.Records += rc.count
	}
	done.DestFrom, done.DestTo, done.Checksum = done.Routes[0].DestFrom, done.Routes[0].DestTo, done.Routes[0].Checksum
	if len(mv.Routes) == 0 {
		done.Routes = nil // a step planned by an older version
	}
	if err := m.ledger.Done(done); err != nil {
		return fmt.Errorf("record the step done: %w", err)
	}
	m.moved.Add(float64(done.Records))
	for i, rc := range rcs {
		if rc.count > 0 {
			m.log.Info("events moved out of a hub that may no longer hold them", "source", mv.Source, "reason", mv.Reason, "from", mv.From, "to", mv.To,
				"dest_partition", dests[i].Dest, "dest_hub", dests[i].DestHub, "dest_from", rc.from, "dest_to", rc.to, "records", rc.count)
		}
	}
	return m.trim(mv.Pipeline, int32(srcPart), mv.To)
}

// trim moves a source's start past a step done.
func (m *migrator) trim(pipeline string, partition int32, to int64) error {
	if f := migrateHook.Load(); f != nil {
		if err := (*f)("trim"); err != nil {
			return err
		}
	}
	return m.n.Trim(pipeline, partition, to)
}
