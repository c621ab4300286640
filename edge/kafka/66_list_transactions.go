package kafka

import (
	"regexp"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sensehq/sense/security"
	"github.com/sensehq/sense/txn"
)

// ListTransactions (key 66), versions 0 to 2. Every version is flexible,
// so the body is decoded by decodeListTransactions, not kmsg (see
// ownDecoders in header.go). Admin clients (kafka-transactions.sh list,
// kadm.ListTransactions) send it to every broker and merge the answers.
//
// The answer is the transactional ids this node coordinates, each with
// its producer id and state, selected as Kafka's coordinator selects them
// (txn.Filter):
//
//   - StateFilters: only ids in one of the states named. A name Kafka
//     does not know is returned in UnknownStateFilters and matches
//     nothing; Dead and PrepareEpochFence are Kafka's but no id is ever
//     in them here (see DescribeTransactions).
//   - ProducerIDFilters: only ids with one of these producer ids.
//   - DurationFilterMillis (v1, KIP-994; -1: none): only ids whose
//     transaction, ongoing or the last one completed, began more than that
//     long ago, and, as in Kafka, those with none since InitProducerId.
//   - TransactionalIDPattern (v2, KIP-1152; null or empty: none): only
//     ids the regular expression (RE2 syntax) matches whole; one that does
//     not compile is INVALID_REGULAR_EXPRESSION.
//
// An id the principal may not describe is left out, as Kafka leaves it.
// A node alone coordinates every id. In a cluster the node that leads the
// committed offsets does, and the others answer an empty list (they hold a
// replica of the state, which the coordinator answers for); when none
// does now, COORDINATOR_NOT_AVAILABLE. While the coordinator recovers the
// transactions, COORDINATOR_LOAD_IN_PROGRESS.
const (
	listTransactionsMin = 0
	listTransactionsMax = 2
)

// kafkaOnlyStates are Kafka's transaction states that no id is in here.
var kafkaOnlyStates = []string{"Dead", "PrepareEpochFence"}

func (c *conn) listTransactions(req *kmsg.ListTransactionsRequest) kmsg.Response {
	resp := kmsg.NewPtrListTransactionsResponse()
	resp.SetVersion(req.Version)
	var f txn.Filter
	for _, name := range req.StateFilters {
		if s, ok := txn.ParseState(name); ok {
			f.States = append(f.States, s)
			continue
		}
		if !slices.Contains(kafkaOnlyStates, name) && !slices.Contains(resp.UnknownStateFilters, name) {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, name)
		}
	}
	// States were named, none that an id here can be in: Kafka filters
	// whenever a state is named, so nothing is selected.
	none := len(req.StateFilters) > 0 && len(f.States) == 0
	f.ProducerIDs = req.ProducerIDFilters
	if req.Version >= 1 && req.DurationFilterMillis >= 0 {
		now := time.Now().UnixMilli()
		f.StartedBefore = time.UnixMilli(now - min(req.DurationFilterMillis, now))
	}
	if p := req.TransactionalIDPattern; req.Version >= 2 && p != nil && *p != "" {
		// Compiled alone first: a pattern that compiles is balanced, so
		// the anchored one means "all of the id".
		re, err := regexp.Compile(*p)
		if err == nil {
			re, err = regexp.Compile(`^(?:` + *p + `)$`)
		}
		if err != nil {
			c.log.Debug("ListTransactions: the transactional id pattern does not compile", "err", err)
			resp.ErrorCode = kerr.InvalidRegularExpression.Code
			return resp
		}
		f.ID = re.MatchString
	}
	b, ok := c.cluster().Coordinator("") // one node coordinates every id
	switch {
	case !ok:
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	case b.ID != c.cluster().Self():
		return resp // another node coordinates the transactions
	case !c.s.txns.Ready():
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
		return resp
	case none:
		return resp
	}
	for _, t := range c.s.txns.List(f) {
		if !c.may(security.Describe, security.TransactionalIDResource(t.ID)) {
			continue
		}
		ts := kmsg.NewListTransactionsResponseTransactionState()
		ts.TransactionalID, ts.ProducerID, ts.TransactionState = t.ID, t.ProducerID, t.State.String()
		resp.TransactionStates = append(resp.TransactionStates, ts)
	}
	return resp
}

// decodeListTransactions decodes a body of versions 0 to 2: StateFilters,
// a compact array of compact strings; ProducerIDFilters, a compact array
// of int64 (neither nullable); DurationFilterMillis, an int64 (v1+);
// TransactionalIDPattern, a compact nullable string (v2+); tags.
func decodeListTransactions(version int16, b []byte) (kmsg.Request, error) {
	req := kmsg.NewPtrListTransactionsRequest() // DurationFilterMillis -1
	req.SetVersion(version)
	r := &kreader{b: b}
	if n := r.requiredArray(1); n > 0 {
		req.StateFilters = make([]string, 0, n)
		for range n {
			req.StateFilters = append(req.StateFilters, r.string())
		}
	}
	if n := r.requiredArray(8); n > 0 {
		req.ProducerIDFilters = make([]int64, 0, n)
		for range n {
			req.ProducerIDFilters = append(req.ProducerIDFilters, r.int64())
		}
	}
	if version >= 1 {
		req.DurationFilterMillis = r.int64()
	}
	if version >= 2 {
		req.TransactionalIDPattern = r.nullableString()
	}
	r.tags()
	return req, r.end()
}
