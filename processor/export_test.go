package processor

import (
	"context"
	"testing"
)

// SetTxnFault makes f the transactional kafka sink's fault hook (see
// txnFault) until the test ends.
func SetTxnFault(t testing.TB, f func(ctx context.Context, stage string, b *Batch) error) {
	txnFault.Store(&f)
	t.Cleanup(func() { txnFault.Store(nil) })
}
