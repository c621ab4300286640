package node

import (
	"context"
	"testing"
	"time"
)

// TestWaitAnyWakesAtOnce: WaitAny over several partitions returns as soon
// as one of them changes, not when its context ends. Its context here
// lasts a minute: the answer must come while it is still alive (a version
// that waited for its watchers before cancelling them returned only at the
// deadline, and a Kafka fetch across partitions slept out its max wait).
func TestWaitAnyWakesAtOnce(t *testing.T) {
	a, b, c := make(chan struct{}), make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go close(c)
	if !WaitAny(ctx, []<-chan struct{}{a, b, c}) {
		t.Fatal("WaitAny reported no change")
	}
	if ctx.Err() != nil {
		t.Fatal("WaitAny returned only when its context ended, not when a channel closed")
	}
}
