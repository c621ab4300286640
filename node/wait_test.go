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

// WaitAny wakes for any one of many channels, in one select (up to
// selectMax) or with a watcher per channel (more), skipping nil ones; with
// none closed it reports false when its context ends.
func TestWaitAnyManyChannels(t *testing.T) {
	for _, n := range []int{2, selectMax, selectMax + 1, 40} {
		for _, which := range []int{0, n - 1} {
			chans := make([]<-chan struct{}, n)
			var closing chan struct{}
			for i := range chans {
				if i == 1 && which != 1 {
					continue // a nil channel
				}
				c := make(chan struct{})
				if i == which {
					closing = c
				}
				chans[i] = c
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			go close(closing)
			if !WaitAny(ctx, chans) || ctx.Err() != nil {
				t.Fatalf("%d channels, #%d closed: WaitAny did not wake at once", n, which)
			}
			cancel()
			ctx, cancel = context.WithTimeout(context.Background(), 10*time.Millisecond)
			open := make([]<-chan struct{}, n)
			for i := range open {
				open[i] = make(chan struct{})
			}
			if WaitAny(ctx, open) {
				t.Fatalf("%d channels, none closed: WaitAny reported a change", n)
			}
			cancel()
		}
	}
}
