package seglog

import (
	"math/rand/v2"
	"testing"

	"github.com/sensehq/sense/vfs"
)

// A new log costs no sync: its directory, segment file and their entries
// are made durable by its first fdatasync, before the first
// acknowledgement. Closing a log that did not change since its last
// checkpoint, and reopening a clean one, sync nothing either.
func TestLazyCreation(t *testing.T) {
	mem := vfs.NewMem()
	if err := mem.MkdirAll("/hubs/h"); err != nil {
		t.Fatal(err)
	}
	fault := vfs.NewFault(mem)
	o := Options{FS: fault, Logger: quiet}
	l := openT(t, "/hubs/h/p-0", o)
	if st := fault.Stats(); st.Syncs != 0 || st.SyncDirs != 0 {
		t.Fatalf("creating a log: %+v, want no sync", st)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if st := fault.Stats(); st.Syncs != 0 || st.SyncDirs != 0 {
		t.Fatalf("closing a new, unchanged log: %+v, want no sync", st)
	}
	// A crash before anything was synced loses the log's directory: it
	// opens empty again.
	mem.Crash(rand.New(rand.NewPCG(1, 2)))
	l = openT(t, "/hubs/h/p-0", o)
	if l.NextOffset() != 0 {
		t.Fatalf("after a crash: next %d", l.NextOffset())
	}
	fault.Reset()
	if _, err := l.Append(mkBatch("a", 2, 10, -1, -1)); err != nil {
		t.Fatal(err)
	}
	if st := fault.Stats(); st.Syncs != 1 || st.SyncDirs != 2 {
		t.Fatalf("first append: %+v, want one fdatasync and two directory syncs", st)
	}
	fault.Reset()
	if _, err := l.Append(mkBatch("b", 2, 10, -1, -1)); err != nil {
		t.Fatal(err)
	}
	if st := fault.Stats(); st.Syncs != 1 || st.SyncDirs != 0 {
		t.Fatalf("second append: %+v, want one fdatasync", st)
	}
	// The acknowledged appends survive a crash that keeps nothing unsynced.
	mem.CrashClean()
	l.Close()
	l = openT(t, "/hubs/h/p-0", o)
	if got := len(readAll(t, l)); got != 2 {
		t.Fatalf("after a crash: %d batches, want 2", got)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	fault.Reset()
	l = openT(t, "/hubs/h/p-0", o)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if st := fault.Stats(); st.Syncs != 0 || st.SyncDirs != 0 {
		t.Fatalf("reopening and closing a clean log: %+v, want no sync", st)
	}
	l = openT(t, "/hubs/h/p-0", o)
	if got := len(readAll(t, l)); got != 2 {
		t.Fatalf("after a clean reopen: %d batches, want 2", got)
	}
}
