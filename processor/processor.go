package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sensehq/sense/admin"
	"github.com/sensehq/sense/config"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/group"
	"github.com/sensehq/sense/jurisdiction"
)

// GroupPrefix starts the name of every processor's consumer group.
const GroupPrefix = "processor."

// Tunables of a processor.
const (
	sessionTimeout   = 10 * time.Second
	heartbeatEvery   = time.Second
	maxFetchBytes    = 1 << 20
	idleFetchBytes   = 4 << 10 // a fetch that waits for new events
	retryFirst       = 100 * time.Millisecond
	retryMax         = 10 * time.Second
	deliverySlots    = 4
	sourceRetryPause = 500 * time.Millisecond
	commitTimeout    = 10 * time.Second
)

// Metadata of a commit that records an intent (see the package comment).
const (
	intentPending    = "pending:"
	intentDeadLetter = "deadletter:"
)

// Processor is one running processor.
type Processor struct {
	cfg      config.Processor
	group    string
	src      Source
	grp      Group
	sink     Sink
	keeper   OffsetKeeper
	preparer Preparer
	dead     *pipelineWriter
	reg      *jurisdiction.Registry
	filter   *filter
	lanes    [3]bool
	budget   *gate
	slots    *gate
	lim      *limiter
	m        *metrics
	log      *slog.Logger
	clientID string

	// stop ends run; done is closed when it has (set by Manager.Start).
	stop context.CancelFunc
	done chan struct{}

	delivered, filtered, retries, deadLettered atomic.Uint64
	lat                                        latencyWindow

	mu        sync.Mutex
	paused    bool
	resumed   chan struct{} // closed by Resume
	stopSess  context.CancelFunc
	sessDone  chan struct{}
	memberID  string
	parts     map[int32]*partState
	lastErr   string
	lastErrAt time.Time
}

// partState is what describe shows of one partition.
type partState struct {
	sp     SourcePartition
	pos    int64     // next offset to commit
	hw     int64     // last known high watermark
	oldest time.Time // timestamp of the oldest record held, zero when none
}

func newProcessor(cfg config.Processor, src Source, reg *jurisdiction.Registry, grp Group, sink Sink, m *metrics, clientID string, log *slog.Logger) (*Processor, error) {
	p := &Processor{cfg: cfg, group: GroupPrefix + cfg.Name, src: src, grp: grp, sink: sink, reg: reg,
		budget: newGate(int64(cfg.MaxInFlightBytes)), slots: newGate(deliverySlots),
		lim: newLimiter(float64(cfg.Rate), cfg.Batch.MaxEvents, time.Duration(cfg.Sink.Timeout)/2),
		m:   m, log: log.With("processor", cfg.Name), clientID: clientID, parts: map[int32]*partState{}, paused: cfg.Paused, resumed: make(chan struct{})}
	var mask jurisdiction.Mask
	if cfg.From.Jurisdiction != "" {
		var err error
		if mask, err = reg.Parse(cfg.From.Jurisdiction); err != nil {
			return nil, fmt.Errorf("processor %s: from.jurisdiction %q: %w; use registered codes (%s), groups or *", cfg.Name, cfg.From.Jurisdiction, err, strings.Join(reg.Codes(), ", "))
		}
	}
	p.filter = newFilter(cfg.Where, mask)
	if len(cfg.From.Priority) == 0 {
		p.lanes = [3]bool{true, true, true}
	}
	for _, s := range cfg.From.Priority {
		pr, err := event.ParsePriority(s)
		if err != nil {
			return nil, fmt.Errorf("processor %s: from.priority %q: %w", cfg.Name, s, err)
		}
		p.lanes[pr] = true
	}
	p.keeper, _ = sink.(OffsetKeeper)
	p.preparer, _ = sink.(Preparer)
	p.dead = &pipelineWriter{src: src, target: cfg.DeadLetter}
	if !p.paused {
		close(p.resumed)
	}
	return p, nil
}

// run works until ctx ends: joins the group, processes the partitions it
// is given, and joins again after each rebalance.
func (p *Processor) run(ctx context.Context) {
	defer p.leave()
	for ctx.Err() == nil {
		p.mu.Lock()
		resumed := p.resumed
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-resumed:
		}
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		p.mu.Lock()
		p.stopSess, p.sessDone = cancel, done
		p.mu.Unlock()
		err := p.session(sctx)
		cancel()
		close(done)
		if err != nil && ctx.Err() == nil && sctx.Err() == nil {
			p.fail("session", err)
			sleep(ctx, sourceRetryPause)
		}
	}
}

func (p *Processor) leave() {
	p.mu.Lock()
	id := p.memberID
	p.memberID = ""
	p.mu.Unlock()
	if id != "" {
		p.grp.Leave(context.Background(), p.group, id)
	}
}

// fail records an error for describe and the log.
func (p *Processor) fail(what string, err error) {
	p.mu.Lock()
	quiet := p.lastErr == err.Error() && time.Since(p.lastErrAt) < 10*time.Second
	p.lastErr, p.lastErrAt = err.Error(), time.Now()
	p.mu.Unlock()
	if !quiet {
		p.log.Warn("processor: "+what+" failed; trying again", "err", err)
	}
}

// session is one generation of the group: join, sync, process the
// partitions given until a rebalance, a pause or ctx's end.
func (p *Processor) session(ctx context.Context) error {
	p.mu.Lock()
	memberID := p.memberID
	p.mu.Unlock()
	jr, err := p.grp.Join(ctx, group.JoinRequest{Group: p.group, MemberID: memberID, ClientID: p.clientID,
		SessionTimeout: sessionTimeout, ProtocolType: "sense-processor", Protocols: []group.Protocol{{Name: "spread"}}})
	if errors.Is(err, group.ErrUnknownMemberID) {
		p.mu.Lock()
		p.memberID = ""
		p.mu.Unlock()
		return nil
	}
	if err != nil {
		return fmt.Errorf("join the group %s: %w", p.group, err)
	}
	p.mu.Lock()
	p.memberID = jr.MemberID
	p.mu.Unlock()
	ref := group.MemberRef{Group: p.group, MemberID: jr.MemberID, Generation: jr.Generation}
	parts, err := p.src.Partitions(ctx, p.cfg.From.Pipeline)
	if err != nil {
		return fmt.Errorf("list the partitions of %s: %w", p.cfg.From.Pipeline, err)
	}
	var assignments []group.MemberAssignment
	if jr.LeaderID == jr.MemberID {
		assignments = p.assign(parts, jr.Members)
	}
	mine, err := p.grp.Sync(ctx, ref, assignments)
	if err != nil {
		if errors.Is(err, group.ErrRebalanceInProgress) || errors.Is(err, group.ErrIllegalGeneration) || errors.Is(err, group.ErrUnknownMemberID) {
			return nil
		}
		return fmt.Errorf("sync the group %s: %w", p.group, err)
	}
	want := map[int32]bool{}
	for _, f := range strings.Split(string(mine), ",") {
		if n, err := strconv.ParseInt(f, 10, 32); err == nil {
			want[int32(n)] = true
		}
	}
	var my []SourcePartition
	for _, sp := range parts {
		if want[sp.Partition] {
			my = append(my, sp)
		}
	}
	starts, intents, err := p.positions(ctx, my)
	if err != nil {
		return err
	}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// The workers stop before the session returns (a rebalance ends it
	// while its context lives on).
	defer func() {
		stop()
		wg.Wait()
	}()
	// A worker that stops on its own (a commit refused: a rebalance, or
	// the offsets store could not take it) ends the session, so that the
	// processor joins again rather than leave its partition idle.
	workerDone := make(chan struct{}, len(my))
	p.mu.Lock()
	p.parts = map[int32]*partState{}
	for _, sp := range my {
		st := &partState{sp: sp, pos: starts[sp.Partition], hw: sp.HighWatermark}
		p.parts[sp.Partition] = st
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := intents[sp.Partition]
			w := &worker{p: p, st: st, ref: ref, span: in, retry: in != nil, recorded: in != nil, chunks: make(chan *chunk, 64)}
			w.run(wctx)
			workerDone <- struct{}{}
		}()
	}
	p.mu.Unlock()
	tick := time.NewTicker(heartbeatEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-workerDone:
			return errWorkerStopped
		case <-tick.C:
		}
		if err := p.grp.Heartbeat(ctx, ref); err != nil {
			return nil // a rebalance, or the member was dropped: join again
		}
		p.refresh(ctx)
		if n, err := p.src.Partitions(ctx, p.cfg.From.Pipeline); err == nil && len(n) != len(parts) && jr.LeaderID == jr.MemberID {
			return nil // partitions were added: the leader assigns again
		}
	}
}

// errWorkerStopped ends a session one of whose workers stopped; its cause
// was recorded (fail).
var errWorkerStopped = errors.New("processor: a partition's delivery stopped; joining the group again")

// assign spreads the partitions of the lanes read over the members, in
// partition order.
func (p *Processor) assign(parts []SourcePartition, members []group.MemberMetadata) []group.MemberAssignment {
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.MemberID
	}
	sort.Strings(ids)
	lists := make([][]string, len(ids))
	i := 0
	for _, sp := range parts {
		if !p.lanes[sp.Lane] {
			continue
		}
		lists[i%len(ids)] = append(lists[i%len(ids)], strconv.Itoa(int(sp.Partition)))
		i++
	}
	out := make([]group.MemberAssignment, len(ids))
	for j, id := range ids {
		out[j] = group.MemberAssignment{MemberID: id, Assignment: []byte(strings.Join(lists[j], ","))}
	}
	return out
}

// intent is a span of consecutive batches whose delivery began and may
// not have ended: [first, last], split into batches of sizes[0] offsets,
// then sizes[1], ..., and the rest. A dead-letter intent is one batch.
type intent struct {
	first, last int64
	sizes       []int64 // offsets in each batch but the last; none: one batch
	dead        bool
	state       string
	reason      string
}

// maxSpan is the most batches one intent covers.
const maxSpan = 16

// maxIntentMetadata is the longest metadata a commit may carry (group's
// limit, Kafka's default).
const maxIntentMetadata = 4096

// metadata is the commit metadata that records the intent:
//
//	pending:FIRST-LAST[/SIZE,SIZE,...]:STATE
//	deadletter:FIRST-LAST:STATE\nREASON
func (in *intent) metadata() string {
	if in.dead {
		return intentDeadLetter + fmt.Sprintf("%d-%d:%s\n%s", in.first, in.last, in.state, in.reason)
	}
	var b strings.Builder
	b.WriteString(intentPending)
	b.WriteString(strconv.FormatInt(in.first, 10))
	b.WriteByte('-')
	b.WriteString(strconv.FormatInt(in.last, 10))
	for i, n := range in.sizes {
		if i == 0 {
			b.WriteByte('/')
		} else {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(n, 10))
	}
	b.WriteByte(':')
	b.WriteString(in.state)
	return b.String()
}

// head returns the range of the span's first batch.
func (in *intent) head() (first, last int64) {
	if len(in.sizes) == 0 {
		return in.first, in.last
	}
	return in.first, in.first + in.sizes[0] - 1
}

// rest returns the span without its first batch, nil when it was the
// last; the state is the span's.
func (in *intent) rest() *intent {
	if len(in.sizes) == 0 {
		return nil
	}
	return &intent{first: in.first + in.sizes[0], last: in.last, sizes: in.sizes[1:], state: in.state}
}

func parseIntent(md string) (*intent, bool) {
	in := &intent{}
	switch {
	case strings.HasPrefix(md, intentPending):
		md = md[len(intentPending):]
	case strings.HasPrefix(md, intentDeadLetter):
		in.dead = true
		md, in.reason, _ = strings.Cut(md[len(intentDeadLetter):], "\n")
	default:
		return nil, false
	}
	rng, state, _ := strings.Cut(md, ":")
	rng, sizes, split := strings.Cut(rng, "/")
	a, b, ok := strings.Cut(rng, "-")
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || first < 0 || last < first {
		return nil, false
	}
	if split {
		fs := strings.Split(sizes, ",")
		if in.dead || len(fs) >= maxSpan {
			return nil, false
		}
		end := first
		for _, f := range fs {
			n, err := strconv.ParseInt(f, 10, 64)
			// Each batch holds at least one offset, and so does the last.
			if err != nil || n <= 0 || n > last-end {
				return nil, false
			}
			end += n
			in.sizes = append(in.sizes, n)
		}
	}
	in.first, in.last, in.state = first, last, state
	return in, true
}

// positions returns where each partition starts, and the intents left by
// an earlier run.
func (p *Processor) positions(ctx context.Context, parts []SourcePartition) (map[int32]int64, map[int32]*intent, error) {
	starts := map[int32]int64{}
	intents := map[int32]*intent{}
	var kept map[int32]int64
	if p.keeper != nil {
		var err error
		if kept, err = p.keeper.Positions(ctx, p.cfg.Name, p.cfg.From.Pipeline); err != nil {
			return nil, nil, fmt.Errorf("read the offsets the %s sink keeps: %w", p.cfg.Sink.Type, err)
		}
	}
	committed, err := p.grp.Committed(ctx, p.group, p.cfg.From.Pipeline)
	if err != nil {
		return nil, nil, fmt.Errorf("read the committed offsets of %s: %w", p.group, err)
	}
	for _, sp := range parts {
		pos := sp.Start
		if p.cfg.From.Start == "end" {
			pos = sp.HighWatermark
		}
		c, ok := committed[sp.Partition]
		if ok {
			pos = c.Offset
			if in, ok := parseIntent(c.Metadata); ok {
				// A dead-letter intent is replayed by any sink; a
				// pending one only by a sink without offsets of its own.
				if in.dead || p.keeper == nil {
					intents[sp.Partition] = in
					pos = in.first
				}
			}
		}
		if k, ok := kept[sp.Partition]; ok && intents[sp.Partition] == nil {
			pos = k
		}
		starts[sp.Partition] = pos
	}
	return starts, intents, nil
}

// refresh updates the high watermarks and the lag metrics.
func (p *Processor) refresh(ctx context.Context) {
	parts, err := p.src.Partitions(ctx, p.cfg.From.Pipeline)
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	var lag int64
	var oldest time.Time
	if err == nil {
		for _, sp := range parts {
			if st := p.parts[sp.Partition]; st != nil && sp.HighWatermark > st.hw {
				st.hw = sp.HighWatermark
			}
		}
	}
	for _, st := range p.parts {
		lag += max(0, st.hw-st.pos)
		if !st.oldest.IsZero() && (oldest.IsZero() || st.oldest.Before(oldest)) {
			oldest = st.oldest
		}
	}
	name := p.cfg.Name
	p.m.lagEvents.WithLabelValues(name).Set(float64(lag))
	secs := 0.0
	if !oldest.IsZero() {
		secs = max(0, now.Sub(oldest).Seconds())
	}
	p.m.lagSeconds.WithLabelValues(name).Set(secs)
	p.m.rate.WithLabelValues(name).Set(p.lim.current())
	p.m.inFlight.WithLabelValues(name).Set(float64(p.budget.inUse()))
}

// commit stores a partition's position (with an intent's metadata).
func (p *Processor) commit(ref group.MemberRef, partition int32, offset int64, md string) error {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	return p.grp.Commit(ctx, ref, []group.OffsetCommit{{
		TopicPartition:  group.TopicPartition{Topic: p.cfg.From.Pipeline, Partition: partition},
		CommittedOffset: group.CommittedOffset{Offset: offset, LeaderEpoch: -1, Metadata: md},
	}})
}

// pause stops the session and waits for its end.
func (p *Processor) pause() {
	p.mu.Lock()
	if !p.paused {
		p.paused = true
		p.resumed = make(chan struct{})
	}
	stop, done := p.stopSess, p.sessDone
	p.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	p.leave()
}

func (p *Processor) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		p.paused = false
		close(p.resumed)
	}
}

// info describes the processor.
func (p *Processor) info(withParts bool) admin.ProcessorInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	p.refresh(ctx) // the high watermarks now, also while paused
	cancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	in := admin.ProcessorInfo{Name: p.cfg.Name, Pipeline: p.cfg.From.Pipeline, Sink: p.cfg.Sink.Type, Group: p.group,
		State: "running", Rate: p.lim.current(), MaxRate: float64(p.cfg.Rate), InFlightBytes: p.budget.inUse(),
		MaxInFlightBytes: int64(p.cfg.MaxInFlightBytes), Delivered: p.delivered.Load(), Filtered: p.filtered.Load(),
		Retries: p.retries.Load(), DeadLettered: p.deadLettered.Load(), SinkLatencyP99: p.lat.p99().Seconds()}
	if p.paused {
		in.State = "paused"
	}
	if time.Since(p.lastErrAt) < time.Minute {
		in.Error = p.lastErr
	}
	var oldest time.Time
	ids := make([]int32, 0, len(p.parts))
	for id, st := range p.parts {
		ids = append(ids, id)
		in.LagEvents += max(0, st.hw-st.pos)
		if !st.oldest.IsZero() && (oldest.IsZero() || st.oldest.Before(oldest)) {
			oldest = st.oldest
		}
	}
	if !oldest.IsZero() {
		in.LagSeconds = max(0, time.Since(oldest).Seconds())
	}
	if withParts {
		sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
		for _, id := range ids {
			st := p.parts[id]
			in.Partitions = append(in.Partitions, admin.ProcessorPartitionInfo{Partition: id, Hub: st.sp.Hub,
				Priority: st.sp.Lane.String(), Position: st.pos, HighWatermark: st.hw, Lag: max(0, st.hw-st.pos)})
		}
	}
	return in
}

// latencyWindow keeps the last delivery latencies for describe's p99.
type latencyWindow struct {
	mu  sync.Mutex
	buf [256]time.Duration
	n   int
}

func (l *latencyWindow) add(d time.Duration) {
	l.mu.Lock()
	l.buf[l.n%len(l.buf)] = d
	l.n++
	l.mu.Unlock()
}

func (l *latencyWindow) p99() time.Duration {
	l.mu.Lock()
	n := min(l.n, len(l.buf))
	s := append([]time.Duration(nil), l.buf[:n]...)
	l.mu.Unlock()
	if n == 0 {
		return 0
	}
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(n*99-1)/100]
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
