package kafka

import (
	"context"
	"slices"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/event"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Fetch (key 1), versions 4 to 11 (12+ are flexible, see header.go). Stored batches are sent
// as they are on disk, without re-encoding: whole batches from the one
// holding the fetch offset, up to the partition's max bytes and what is
// left of the request's max bytes, but at least one batch for a partition
// while any of the request's budget is left (so a batch larger than the
// limits still makes progress; Kafka does this for the first partition
// only, so a response may exceed max_bytes by up to one batch per
// partition). With isolation level read_uncommitted (0) a partition is
// read up to its high watermark; with read_committed (1) up to its last
// stable offset (node.StableOffset: the first offset of its oldest open
// transaction), with the aborted transactions that hold offsets in the
// range returned (producer id, first offset), by which the client drops
// their records. Each partition's LastStableOffset is its real one. The
// response waits up to max_wait_ms until min_bytes are
// there. Fetch sessions are not kept: the response's session id is 0, so
// clients send full fetch requests. Only a partition's leader serves it;
// another node answers NOT_LEADER_OR_FOLLOWER (read replicas and rack
// awareness are not implemented). A principal whose read ACLs limit it to
// jurisdictions gets the batches with the records it may not receive
// removed (node.MaskFilter: offsets kept, a batch emptied stays as an
// empty batch that clients step over), so it skips them.
const (
	fetchMin = 4
	fetchMax = 11
)

// done is an ended context: node.Fetch with it never waits.
var done = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

func (c *conn) fetch(req *kmsg.FetchRequest) kmsg.Response {
	deadline := time.Now().Add(time.Duration(max(req.MaxWaitMillis, 0)) * time.Millisecond)
	for {
		// Take the change channels before reading, so that nothing
		// appended after the read is missed while waiting.
		var chans []<-chan struct{}
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				if ch := c.s.node.Changed(t.Topic, p.Partition); ch != nil {
					chans = append(chans, ch)
				}
			}
		}
		resp, total, failed := c.fetchOnce(req)
		if failed || total >= int(req.MinBytes) || total > 0 && req.MinBytes <= 0 || !time.Now().Before(deadline) || c.ctx.Err() != nil {
			return resp
		}
		if !c.wait(chans, deadline) {
			resp, _, _ = c.fetchOnce(req)
			return resp
		}
	}
}

// wait blocks until one of chans is closed (it reports true), or the
// deadline passes or the connection stops (false).
func (c *conn) wait(chans []<-chan struct{}, deadline time.Time) bool {
	ctx, cancel := context.WithDeadline(c.ctx, deadline)
	defer cancel()
	return node.WaitAny(ctx, chans)
}

// fetchOnce reads what is there now. It returns the response, the record
// bytes in it, and whether a partition failed (then the response goes out
// at once).
func (c *conn) fetchOnce(req *kmsg.FetchRequest) (*kmsg.FetchResponse, int, bool) {
	resp := kmsg.NewPtrFetchResponse()
	resp.SetVersion(req.Version)
	left := int(req.MaxBytes)
	if left <= 0 {
		left = 1
	}
	total := 0
	failed := false
	// The partitions are read critical lane first, then medium, then low,
	// so that a consumer that lags gets its critical events within the
	// request's byte limit before the rest; the response keeps the
	// request's order.
	type slot struct {
		topic     int
		partition int
		lane      event.Priority
	}
	order := make([]slot, 0, 8)
	resp.Topics = make([]kmsg.FetchResponseTopic, len(req.Topics))
	denied := make([]int16, len(req.Topics))
	readLimits := make([]security.ReadLimit, len(req.Topics))
	for ti, t := range req.Topics {
		rt := &resp.Topics[ti]
		*rt = kmsg.NewFetchResponseTopic()
		rt.Topic = t.Topic
		rt.Partitions = make([]kmsg.FetchResponseTopicPartition, len(t.Partitions))
		denied[ti] = c.authorize(security.Read, security.PipelineResource(t.Topic))
		if denied[ti] == 0 {
			readLimits[ti] = c.readLimit(t.Topic)
		}
		for pi, p := range t.Partitions {
			lane, _ := c.s.node.Lane(t.Topic, p.Partition)
			order = append(order, slot{ti, pi, lane})
		}
	}
	slices.SortStableFunc(order, func(a, b slot) int { return int(b.lane) - int(a.lane) })
	for _, o := range order {
		t, p := &req.Topics[o.topic], &req.Topics[o.topic].Partitions[o.partition]
		rp := &resp.Topics[o.topic].Partitions[o.partition]
		*rp = kmsg.NewFetchResponseTopicPartition()
		rp.Partition = p.Partition
		// An empty record set, never a null one (size -1): Kafka
		// sends empty, and librdkafka fails to parse null.
		rp.RecordBatches = []byte{}
		if denied[o.topic] != 0 {
			rp.ErrorCode = denied[o.topic]
			failed = true
			continue
		}
		readLimit := readLimits[o.topic]
		// Leadership first: a node that holds no replica would ask
		// another node for the offsets, and then refuse.
		code := c.leaderCode(t.Topic, p.Partition)
		var start, hw int64
		if code == result.OK {
			start, hw, code = c.s.node.Offsets(t.Topic, p.Partition)
		}
		if code != result.OK {
			rp.ErrorCode = code.Kafka()
			failed = true
			continue
		}
		iso := node.ReadUncommitted
		if req.IsolationLevel == 1 {
			iso = node.ReadCommittedKafka
		}
		end := p.FetchOffset
		if p.FetchOffset < 0 {
			code = result.OffsetOutOfRange
		} else if limit := min(int(p.PartitionMaxBytes), left); limit > 0 || total == 0 {
			var b []byte
			b, _, _, code = c.s.node.FetchIsolated(done, t.Topic, p.Partition, p.FetchOffset, max(limit, 1), nil, iso)
			if code == result.OK && len(b) > 0 && readLimit.Limited() {
				b, code = c.filterRecords(b, readLimit)
			}
			if code == result.OK && len(b) > 0 {
				rp.RecordBatches = b
				total += len(b)
				left -= len(b)
				end = batchesEnd(b)
			}
		}
		lso := hw
		if code == result.OK {
			// The high watermark as of the read, or later: never
			// below the batches returned; the last stable offset
			// after it, so never above it.
			_, hw, _ = c.s.node.Offsets(t.Topic, p.Partition)
			var aborted []node.AbortedTxn
			lso, aborted, code = c.s.node.AbortedTransactions(t.Topic, p.Partition, p.FetchOffset, end)
			lso = min(lso, hw)
			if iso == node.ReadCommittedKafka {
				for _, a := range aborted {
					at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
					at.ProducerID, at.FirstOffset = a.ProducerID, a.FirstOffset
					rp.AbortedTransactions = append(rp.AbortedTransactions, at)
				}
			}
		}
		rp.HighWatermark = hw
		rp.LastStableOffset = lso
		rp.LogStartOffset = start
		if code != result.OK {
			rp.ErrorCode = code.Kafka()
			failed = true
		}
	}
	return resp, total, failed
}

// batchesEnd returns the offset after the last of whole batches b.
func batchesEnd(b []byte) int64 {
	end := int64(-1)
	for len(b) >= batch.HeaderSize {
		h, err := batch.ParseHeader(b)
		if err != nil || h.Size() > len(b) {
			break
		}
		end = h.NextOffset()
		b = b[h.Size():]
	}
	return end
}
