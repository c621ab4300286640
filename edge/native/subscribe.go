package native

import (
	"context"
	"sync"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/edge/native/wire"
	"github.com/sensehq/sense/node"
	"github.com/sensehq/sense/result"
	"github.com/sensehq/sense/security"
)

// subscription pushes DATA frames for one partition, paced by credit.
type subscription struct {
	c      *conn
	corr   uint32
	m      wire.Subscribe
	ctx    context.Context
	cancel context.CancelFunc

	// filter and fbuf remove the records a jurisdiction-limited
	// principal may not receive.
	filter node.MaskFilter
	fbuf   []byte

	mu     sync.Mutex
	acct   wire.CreditAccount
	credit chan struct{} // signalled when credit arrives
}

func (s *subscription) addCredit(n uint32) {
	s.mu.Lock()
	s.acct.Add(n)
	s.mu.Unlock()
	select {
	case s.credit <- struct{}{}:
	default:
	}
}

func (c *conn) subscribe(corr uint32, m wire.Subscribe) {
	offset := m.Offset
	switch offset {
	case wire.OffsetEarliest:
		offset = node.Earliest
	case wire.OffsetLatest:
		offset = node.Latest
	}
	start, _, hw, code := c.s.node.Resolve(m.Pipeline, m.Partition, offset)
	switch code {
	case result.OK:
	case result.OffsetOutOfRange:
		c.write(func(b []byte) []byte {
			return wire.AppendError(b, corr, code, "SUBSCRIBE: offset outside the partition's range")
		})
		return
	default:
		c.write(func(b []byte) []byte {
			return wire.AppendError(b, corr, code, "SUBSCRIBE "+m.Pipeline+": "+code.String())
		})
		return
	}
	c.smu.Lock()
	if c.subs[corr] != nil {
		c.smu.Unlock()
		c.write(func(b []byte) []byte {
			return wire.AppendError(b, corr, result.InvalidRequest, "SUBSCRIBE: correlation id already names a subscription on this connection")
		})
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	sub := &subscription{c: c, corr: corr, m: m, ctx: ctx, cancel: cancel, acct: wire.NewCreditAccount(m.Credit), credit: make(chan struct{}, 1)}
	c.subs[corr] = sub
	c.smu.Unlock()
	if c.write(func(b []byte) []byte {
		return wire.AppendSubscribed(b, corr, wire.Subscribed{Partition: m.Partition, StartOffset: start, HighWatermark: hw})
	}) != nil {
		return
	}
	c.work.Add(1)
	go func() {
		defer c.work.Done()
		failed := sub.run(start)
		c.smu.Lock()
		if c.subs[corr] == sub {
			delete(c.subs, corr)
		}
		c.smu.Unlock()
		if !failed {
			// After an ERROR the id is free at once; UNSUBSCRIBED would
			// be misread by a client that reuses it.
			c.write(func(b []byte) []byte { return wire.AppendUnsubscribed(b, corr) })
		}
	}()
}

// visible checks, with security on, that the principal may still read
// the pipeline (an ACL removed ends the subscription with ERROR
// UNAUTHORIZED), and removes from buf the records its read limit does
// not allow (node.MaskFilter: offsets kept). It reports false when the
// subscription ended.
func (s *subscription) visible(buf []byte) ([]byte, bool) {
	c := s.c
	if !c.s.opts.Auth.Enabled() {
		return buf, true
	}
	if err := c.s.opts.Authorizer.Authorize(c.principal, security.Read, security.PipelineResource(s.m.Pipeline)); err != nil {
		c.log.Info("subscription ended: read no longer allowed", "pipeline", s.m.Pipeline, "err", err)
		c.write(func(b []byte) []byte {
			return wire.AppendError(b, s.corr, result.Unauthorized, "subscription ended: "+err.Error())
		})
		return nil, false
	}
	lim := c.readLimit(s.m.Pipeline)
	if !lim.Limited() {
		return buf, true
	}
	var err error
	if s.fbuf, err = s.filter.Filter(s.fbuf[:0], buf, lim.Allows); err != nil {
		c.log.Error("filtering a subscription by jurisdiction failed", "pipeline", s.m.Pipeline, "err", err)
		c.write(func(b []byte) []byte {
			return wire.AppendError(b, s.corr, result.StorageError, "subscription ended: "+err.Error())
		})
		return nil, false
	}
	return s.fbuf, true
}

// renewed is a context with a timeout that is made again once it has
// ended: the waits of a loop share one per period.
type renewed struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// get returns the current context, or a new one of parent ending after d.
func (r *renewed) get(parent context.Context, d time.Duration) context.Context {
	if r.ctx == nil || r.ctx.Err() != nil {
		r.stop()
		r.ctx, r.cancel = context.WithTimeout(parent, d)
	}
	return r.ctx
}

func (r *renewed) stop() {
	if r.cancel != nil {
		r.cancel()
	}
}

// run pushes batches from offset until the subscription ends. It reports
// whether it ended with an ERROR frame.
func (s *subscription) run(offset int64) (failed bool) {
	maxFrame := s.c.s.opts.Limits.MaxFrameBytes - wire.DataOverhead
	var buf []byte
	// A fetch waits for new data at most until wait ends, so the loop
	// comes round at least once a second; one wait serves every fetch of
	// its second rather than a timer per fetch.
	var wait renewed
	defer wait.stop()
	for s.ctx.Err() == nil {
		s.mu.Lock()
		credit := s.acct.Credit()
		s.mu.Unlock()
		if credit <= 0 {
			select {
			case <-s.ctx.Done():
				return false
			case <-s.credit:
			}
			continue
		}
		want := int(min(credit, int64(maxFrame)))
		var hw int64
		var code result.Code
		buf, _, hw, code = s.c.s.node.Fetch(wait.get(s.ctx, time.Second), s.m.Pipeline, s.m.Partition, offset, want, buf[:0])
		if code != result.OK {
			s.c.write(func(b []byte) []byte {
				return wire.AppendError(b, s.corr, result.Code(code), "subscription ended: "+code.String())
			})
			return true
		}
		if len(buf) == 0 {
			continue
		}
		data, ok := s.visible(buf)
		if !ok {
			return true
		}
		// Keep only the batches the credit pays for (at least the first
		// when the rule allows an oversized one).
		n, next := 0, offset
		limit := 0
		s.mu.Lock()
		for n < len(data) {
			size, _ := batch.Size(data[n:])
			if n == 0 {
				limit = s.acct.Allowance(size)
				if limit == 0 {
					break // wait for credit
				}
			} else if n+size > limit || n+size > maxFrame {
				break
			}
			h, _ := batch.ParseHeader(data[n:])
			next = h.NextOffset()
			n += size
			if int64(size) > s.acct.Credit() {
				break // an oversized batch goes alone
			}
		}
		if n > 0 {
			s.acct.Spend(n)
		}
		s.mu.Unlock()
		if n == 0 {
			// The credit left is above 0 but cannot pay for the next
			// batch (rule 4) and is below the window (rule 5): wait for
			// CREDIT instead of fetching the same batch again at once.
			select {
			case <-s.ctx.Done():
				return false
			case <-s.credit:
			}
			continue
		}
		data = data[:n]
		if s.c.writeWith(func(b []byte) []byte {
			return wire.AppendDataHeader(b, s.corr, s.m.Partition, hw, len(data))
		}, data) != nil {
			return false
		}
		offset = next
	}
	return false
}
