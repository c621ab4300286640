package security

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/sensehq/sense/vfs"
)

// The security audit log on disk. Each node appends its security events
// (authentications, and the changes of users and ACLs it made) to a file of
// its data directory, one JSON object a line, so that they outlive a
// restart: `sense audit log --security` shows them, the newest
// DefaultAuditSize, and the files themselves can go to a log shipper.
//
// Writes leave the authenticating goroutine at once: lines are gathered
// and written, then fsynced, by a goroutine every auditFlushEvery. So a
// crash loses at most that much of the log, never the service. A file
// past auditRotateBytes is renamed to NAME.1 (replacing the one before) and
// a new one begun: at most twice that much disk. A write or fsync that
// fails stops the file for good (logged as an error, never retried, as
// for every log Sense keeps); the events go on being kept in memory.

// AuditFileName is the audit log's file in a node's data directory.
const AuditFileName = "security-audit.log"

const (
	auditFlushEvery  = time.Second
	auditRotateBytes = 8 << 20
	// auditLoadBytes bounds what is read back at start: the file's end.
	auditLoadBytes = 1 << 20
)

// auditFile appends an AuditLog's events to a file.
type auditFile struct {
	fs   vfs.FS
	path string
	log  *slog.Logger

	mu      sync.Mutex
	pending []byte
	failed  bool

	flushMu sync.Mutex // one flush at a time; guards f and size
	f       vfs.File
	size    int64

	quit chan struct{}
	done chan struct{}
}

// OpenAuditFile returns an AuditLog of size events that keeps them in
// path too, first loading the newest events the file holds. Close stops
// it, writing what is pending.
func OpenAuditFile(fsys vfs.FS, path string, size int, log *slog.Logger) (*AuditLog, error) {
	if log == nil {
		log = slog.Default()
	}
	l := NewAuditLog(size)
	af := &auditFile{fs: fsys, path: path, log: log, quit: make(chan struct{}), done: make(chan struct{})}
	f, err := fsys.OpenRW(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if f, err = fsys.Create(path); err != nil {
			return nil, fmt.Errorf("security: create the audit log %s: %w", path, err)
		}
		if err := fsys.SyncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, fmt.Errorf("security: create the audit log %s: %w", path, err)
		}
	case err != nil:
		return nil, fmt.Errorf("security: open the audit log %s: %w", path, err)
	}
	af.f = f
	if af.size, err = f.Size(); err != nil {
		f.Close()
		return nil, fmt.Errorf("security: audit log %s: %w", path, err)
	}
	bad, err := af.load(l)
	if err != nil {
		f.Close()
		return nil, err
	}
	if bad > 0 {
		// A line cut by a crash, or edited by hand: the rest still reads.
		log.Warn("the security audit log has lines that do not read; they are skipped", "file", path, "lines", bad)
	}
	l.sink = af
	go af.run()
	return l, nil
}

// load reads the file's last events into l; it returns how many lines did
// not decode.
func (af *auditFile) load(l *AuditLog) (int, error) {
	from := max(af.size-auditLoadBytes, 0)
	buf := make([]byte, af.size-from)
	if _, err := af.f.ReadAt(buf, from); err != nil && len(buf) > 0 {
		return 0, fmt.Errorf("security: read the audit log %s: %w", af.path, err)
	}
	if from > 0 {
		// Start at a whole line.
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
	}
	bad := 0
	for line := range bytes.SplitSeq(buf, []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		var e Event
		if err := json.Unmarshal(line, &e); err != nil {
			bad++
			continue
		}
		l.add(e)
	}
	return bad, nil
}

// append queues an event's line.
func (af *auditFile) append(e Event) {
	line, err := json.Marshal(e)
	if err != nil {
		return // cannot happen: the fields are strings, a bool and a time
	}
	af.mu.Lock()
	if !af.failed {
		af.pending = append(append(af.pending, line...), '\n')
	}
	af.mu.Unlock()
}

func (af *auditFile) run() {
	defer close(af.done)
	t := time.NewTicker(auditFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			af.flush()
		case <-af.quit:
			af.flush()
			af.flushMu.Lock()
			af.f.Close()
			af.flushMu.Unlock()
			return
		}
	}
}

// flush writes and syncs what is pending, rotating the file when it is
// full.
func (af *auditFile) flush() {
	af.flushMu.Lock()
	defer af.flushMu.Unlock()
	af.mu.Lock()
	p := af.pending
	af.pending = nil
	failed := af.failed
	af.mu.Unlock()
	if failed || len(p) == 0 {
		return
	}
	if err := af.write(p); err != nil {
		af.mu.Lock()
		af.failed = true
		af.pending = nil
		af.mu.Unlock()
		af.log.Error("the security audit log stopped: a write to its file failed; events are kept in memory only until the node restarts", "file", af.path, "err", err)
	}
}

func (af *auditFile) write(p []byte) error {
	if af.size > 0 && af.size+int64(len(p)) > auditRotateBytes {
		if err := af.rotate(); err != nil {
			return err
		}
	}
	if _, err := af.f.WriteAt(p, af.size); err != nil {
		return err
	}
	af.size += int64(len(p))
	return af.f.Sync()
}

// rotate makes the file NAME.1 and begins a new one.
func (af *auditFile) rotate() error {
	if err := af.f.Close(); err != nil {
		return err
	}
	if err := af.fs.Rename(af.path, af.path+".1"); err != nil {
		return err
	}
	f, err := af.fs.Create(af.path)
	if err != nil {
		return err
	}
	af.f, af.size = f, 0
	return af.fs.SyncDir(filepath.Dir(af.path))
}

// Close writes the pending events and stops the file; the log keeps
// working in memory.
func (l *AuditLog) Close() {
	l.mu.Lock()
	af := l.sink
	l.sink = nil
	l.mu.Unlock()
	if af != nil {
		close(af.quit)
		<-af.done
	}
}
