package security

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sensehq/sense/vfs"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestAuditFile: events outlive a restart (the newest ones are read back);
// a line cut by a crash is skipped, not fatal; past the rotation size the
// file is renamed NAME.1 and a new one begun, and the log still reads the
// newest events.
func TestAuditFile(t *testing.T) {
	fs := vfs.NewMem()
	if err := fs.MkdirAll("/data"); err != nil {
		t.Fatal(err)
	}
	path := "/data/" + AuditFileName
	open := func() *AuditLog {
		t.Helper()
		l, err := OpenAuditFile(fs, path, 16, quietLog)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	ev := func(i int) Event {
		return Event{Time: time.Unix(int64(1700000000+i), 0).UTC(), Edge: "kafka", Remote: "127.0.0.1:1", Mechanism: ScramSHA512,
			User: fmt.Sprintf("user-%d", i), Success: i%2 == 0, Reason: "r"}
	}
	l := open()
	for i := range 10 {
		l.Add(ev(i))
	}
	l.Close()

	// A half-written line at the end, as a crash leaves it.
	f, err := fs.OpenRW(path)
	if err != nil {
		t.Fatal(err)
	}
	size, _ := f.Size()
	f.WriteAt([]byte(`{"time":"2023-`), size)
	f.Sync()
	f.Close()

	l = open()
	got, total := l.Events()
	if len(got) != 10 || total != 10 || got[0] != ev(0) || got[9] != ev(9) {
		t.Fatalf("after a restart: %d events (%d in all), first %+v, last %+v; want the 10 written", len(got), total, got[0], got[len(got)-1])
	}
	// Many more than the ring holds, past the rotation size.
	reason := strings.Repeat("x", 4096)
	n := auditRotateBytes/4096 + 100
	for i := range n {
		e := ev(100 + i)
		e.Reason = reason
		l.Add(e)
		if i%500 == 0 {
			l.sink.flush()
		}
	}
	l.Close()
	if _, err := fs.Open(path + ".1"); err != nil {
		t.Fatalf("no rotated file after %d bytes: %v", n*4096, err)
	}
	l = open()
	defer l.Close()
	got, _ = l.Events()
	if len(got) != 16 || got[15].User != fmt.Sprintf("user-%d", 100+n-1) {
		t.Fatalf("after rotation and restart: %d events, last %+v; want the newest 16", len(got), got[len(got)-1].User)
	}
}
