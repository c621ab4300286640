// Package movelog keeps the migrator's checkpoints on a node alone (dev
// mode): each source buffer's last step, planned then done, and the audit
// log of moves (`sense audit log`). In a cluster the metadata log keeps
// them (package meta); this file keeps the same commands, move.plan and
// move.done (meta.Command), and applies them to a meta.State the same
// way, so a step's producer id comes from the same counter
// (meta.MovePIDBase + the plans made before it): a plan is durable before
// anything is written under its producer id, so no id that wrote copies is
// ever handed out again, across any crash.
//
// The file, <data_dir>/moves.log (docs/storage.md, "The move log"):
//
//	header  [8]byte "SENSEMOV", uint32 format version (1), uint32 CRC-32C of the 12 bytes before
//	record  uint32 body length n (1 to maxRecord), uint32 CRC-32C of the body, the body:
//	        a meta.Command as JSON: move.plan, move.done, or move.forget
//
// move.forget is this file's own: a pipeline was deleted, and the last
// steps of its buffers are forgotten (its done steps stay in the audit
// log), so that a new pipeline of the same name, whose offsets start
// again, is not taken for the old one.
//
// It is created with its first record (a node that never migrates has
// none), each record is appended and fdatasynced before Plan or Done
// returns, and it is replayed at open. The first record that is cut
// short, or fails its CRC, ends the file: when no whole record starts
// after it, it is the torn tail of a step that was never recorded, and is
// cut; otherwise, or when a record whose CRC holds does not decode or
// apply, the file is damaged and Open fails, naming the byte. A failed
// write or fdatasync is never retried: the log refuses every later step
// until the process restarts and replays what is on disk.
package movelog

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/meta"
	"github.com/sensehq/sense/vfs"
)

// OpForget is the op of a move.forget record.
const OpForget = "move.forget"

const (
	magic      = "SENSEMOV"
	version    = 1
	headerSize = 16
	overhead   = 8 // a record's length and CRC
	// maxRecord bounds a record's body: a step with its routes is far
	// smaller.
	maxRecord = 1 << 20
)

var (
	// ErrCorrupt is matched by Open's error for a move log damaged before
	// its end.
	ErrCorrupt = errors.New("movelog: the move log is damaged")
	// ErrFailed is matched by the error of every step recorded after a
	// write or fdatasync of the file failed.
	ErrFailed = errors.New("movelog: the move log failed after a write or fsync error")
)

// Options configure a Log. The zero value works.
type Options struct {
	Logger *slog.Logger
	// Now is the clock of the steps' times; default time.Now.
	Now func() time.Time
}

// Log is the move log of a node alone. It is safe for concurrent use.
type Log struct {
	fs   vfs.FS
	path string
	lg   *slog.Logger
	now  func() time.Time

	mu     sync.Mutex
	st     meta.State
	f      vfs.File // open for appends; nil until the first append of this process
	size   int64    // end of the last whole record; 0 when the file does not exist
	failed error
	closed bool
}

// Open replays the move log at path, if it exists, cutting a torn tail.
func Open(fs vfs.FS, path string, opts Options) (*Log, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	l := &Log{fs: fs, path: path, lg: opts.Logger, now: opts.Now}
	if err := fs.Remove(path + ".tmp"); err != nil && !vfs.IsNotExist(err) {
		return nil, fmt.Errorf("movelog: remove the unfinished creation %s.tmp: %w", path, err)
	}
	raw, err := vfs.ReadFile(fs, path)
	if vfs.IsNotExist(err) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("movelog: read %s: %w", path, err)
	}
	cmds, end, err := Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("movelog: %s: %w", path, err)
	}
	for i := range cmds {
		if cmds[i].Op == OpForget {
			l.forget(cmds[i].Pipeline)
			continue
		}
		if err := cmds[i].Check(&l.st); err != nil {
			return nil, fmt.Errorf("%w: %s: record %d (%s of %s) does not follow the ones before: %v; restore the file from a backup",
				ErrCorrupt, path, i+1, cmds[i].Op, cmds[i].Move.Source, err)
		}
		l.st.Apply(&cmds[i])
	}
	l.size = end
	if end < int64(len(raw)) {
		// A step whose record was cut short: it was never recorded, and
		// nothing was written under its producer id. Cut it durably
		// before anything is appended after it.
		l.lg.Warn("cutting the torn tail of the move log", "file", path, "at", end, "bytes", int64(len(raw))-end)
		f, err := fs.OpenRW(path)
		if err != nil {
			return nil, fmt.Errorf("movelog: open %s: %w", path, err)
		}
		if err := f.Truncate(end); err != nil {
			f.Close()
			return nil, fmt.Errorf("movelog: cut the torn tail of %s at byte %d: %w", path, end, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("movelog: cut the torn tail of %s: fdatasync: %w", path, err)
		}
		l.f = f
	}
	return l, nil
}

// Decode replays the bytes of a move log: its commands in order, and the
// end of the last whole record (the length of raw unless a torn tail
// follows). Damage before the tail is an error wrapping ErrCorrupt.
func Decode(raw []byte) ([]meta.Command, int64, error) {
	if len(raw) < headerSize || string(raw[:8]) != magic {
		return nil, 0, fmt.Errorf("%w: no move log header", ErrCorrupt)
	}
	if binary.BigEndian.Uint32(raw[12:16]) != batch.Checksum(raw[:12]) {
		return nil, 0, fmt.Errorf("%w: header CRC mismatch", ErrCorrupt)
	}
	if v := binary.BigEndian.Uint32(raw[8:12]); v != version {
		return nil, 0, fmt.Errorf("move log format version %d; this Sense reads %d: run the version that wrote it", v, version)
	}
	var cmds []meta.Command
	for pos := headerSize; pos < len(raw); {
		body, ok := recordAt(raw, pos)
		if !ok {
			if wholeRecordAfter(raw, pos) {
				return nil, 0, fmt.Errorf("%w: the record at byte %d is damaged and whole records follow it; restore the file from a backup", ErrCorrupt, pos)
			}
			return cmds, int64(pos), nil // a torn tail
		}
		c, err := decodeCommand(body)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: the record at byte %d: %v", ErrCorrupt, pos, err)
		}
		cmds = append(cmds, c)
		pos += overhead + len(body)
	}
	return cmds, int64(len(raw)), nil
}

// recordAt returns the body of the record at pos, if a whole one with a
// good CRC is there.
func recordAt(b []byte, pos int) ([]byte, bool) {
	rest := b[pos:]
	if len(rest) < overhead {
		return nil, false
	}
	n := int64(binary.BigEndian.Uint32(rest))
	if n == 0 || n > maxRecord || n > int64(len(rest)-overhead) {
		return nil, false
	}
	body := rest[overhead : overhead+n]
	if batch.Checksum(body) != binary.BigEndian.Uint32(rest[4:]) {
		return nil, false
	}
	return body, true
}

// wholeRecordAfter reports whether a whole record holding a JSON object
// starts anywhere in b after pos: evidence that the damage at pos is not a
// torn tail.
func wholeRecordAfter(b []byte, pos int) bool {
	for p := pos + 1; p+overhead < len(b); p++ {
		if body, ok := recordAt(b, p); ok && body[0] == '{' {
			return true
		}
	}
	return false
}

// decodeCommand parses a record's body: a move.plan or move.done command
// with its step, or a move.forget naming a pipeline.
func decodeCommand(body []byte) (meta.Command, error) {
	var c meta.Command
	if err := json.Unmarshal(body, &c); err != nil {
		return c, err
	}
	switch {
	case c.Op == OpForget && c.Pipeline != "":
	case (c.Op == meta.OpMovePlan || c.Op == meta.OpMoveDone) && c.Move != nil:
	default:
		return c, fmt.Errorf("op %q without its step or pipeline; a move log holds %s, %s and %s", c.Op, meta.OpMovePlan, meta.OpMoveDone, OpForget)
	}
	return c, nil
}

// appendRecord appends a record holding body to dst.
func appendRecord(dst, body []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
	dst = binary.BigEndian.AppendUint32(dst, batch.Checksum(body))
	return append(dst, body...)
}

// header returns a move log's header.
func header() []byte {
	b := append([]byte(magic), 0, 0, 0, version)
	return binary.BigEndian.AppendUint32(b, batch.Checksum(b))
}

// Plan records a step planned (meta.Command move.plan: the source's last
// step must be done, and end at or before the new one's start) and returns
// it as recorded: with its producer id and the time it was planned. It
// returns once the record is durable.
func (l *Log) Plan(m meta.Move) (meta.Move, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.record(meta.Command{Op: meta.OpMovePlan, Move: &m}); err != nil {
		return meta.Move{}, err
	}
	return l.st.Moves[m.Source], nil
}

// Done records a planned step copied and verified (meta.Command
// move.done), once durable; it joins the audit log of moves.
func (l *Log) Done(m meta.Move) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.record(meta.Command{Op: meta.OpMoveDone, Move: &m})
}

// Forget records that a pipeline was deleted: the last steps of its
// buffers are forgotten (a step under way is abandoned with the buffers
// it read and wrote), its done steps stay in the audit log. A pipeline
// with no step recorded needs no record.
func (l *Log) Forget(pipeline string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !slices.Contains(l.pipelines(), pipeline) {
		return nil
	}
	return l.record(meta.Command{Op: OpForget, Pipeline: pipeline})
}

// Pipelines returns the pipelines with a last step recorded, sorted.
func (l *Log) Pipelines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pipelines()
}

func (l *Log) pipelines() []string {
	var out []string
	for _, m := range l.st.Moves {
		if !slices.Contains(out, m.Pipeline) {
			out = append(out, m.Pipeline)
		}
	}
	slices.Sort(out)
	return out
}

// forget drops a pipeline's last steps from the state.
func (l *Log) forget(pipeline string) {
	for src, m := range l.st.Moves {
		if m.Pipeline == pipeline {
			delete(l.st.Moves, src)
		}
	}
}

// record checks c against the state, appends it durably and applies it.
// Called with mu held.
func (l *Log) record(c meta.Command) error {
	switch {
	case l.closed:
		return errors.New("movelog: closed")
	case l.failed != nil:
		return l.failed
	}
	c.At = l.now().UnixNano()
	if c.Op != OpForget {
		if err := c.Check(&l.st); err != nil {
			return err
		}
	}
	body, err := json.Marshal(&c)
	if err != nil {
		return fmt.Errorf("movelog: encode %s: %w", c.Op, err)
	}
	if len(body) > maxRecord {
		return fmt.Errorf("movelog: %s is %d bytes, more than a record holds (%d)", c.Op, len(body), maxRecord)
	}
	if err := l.ensureFile(); err != nil {
		return err
	}
	rec := appendRecord(nil, body)
	if _, err := l.f.WriteAt(rec, l.size); err != nil {
		return l.fail(fmt.Errorf("write %d bytes at byte %d: %w", len(rec), l.size, err))
	}
	if err := l.f.Sync(); err != nil {
		return l.fail(fmt.Errorf("fdatasync: %w", err))
	}
	l.size += int64(len(rec))
	if c.Op == OpForget {
		l.forget(c.Pipeline)
	} else {
		l.st.Apply(&c)
	}
	return nil
}

// ensureFile opens the file for appends, creating it (its header alone,
// written atomically and durably) on the first step ever. Called with mu
// held.
func (l *Log) ensureFile() error {
	if l.f != nil {
		return nil
	}
	if l.size == 0 {
		if err := vfs.WriteFileAtomic(l.fs, l.path, header()); err != nil {
			// Given up like a failed append: a directory sync is not
			// retried either, since a plan must never be acknowledged in
			// a file whose name a crash can take back.
			return l.fail(fmt.Errorf("create: %w", err))
		}
		l.size = headerSize
	}
	f, err := l.fs.OpenRW(l.path)
	if err != nil {
		return fmt.Errorf("movelog: open %s: %w", l.path, err)
	}
	l.f = f
	return nil
}

// fail gives the log up after a failed write or fdatasync: the state of
// the file past the last whole record is unknown, and a sync that failed
// is never retried (a retry can falsely succeed).
func (l *Log) fail(err error) error {
	l.failed = fmt.Errorf("%w: %s: %w; no more migration steps are recorded until Sense restarts (and replays the file)", ErrFailed, filepath.Base(l.path), err)
	l.lg.Error("the move log failed; the migrator stops until Sense restarts", "file", l.path, "err", err)
	return l.failed
}

// Move returns a source buffer's last step.
func (l *Log) Move(source string) (meta.Move, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, ok := l.st.Moves[source]
	return m, ok
}

// Moves returns the audit log of moves: every step done, in order.
func (l *Log) Moves() []meta.Move {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.st.MoveLog)
}

// Close closes the file. Every step recorded is durable already.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.f != nil {
		return l.f.Close()
	}
	return nil
}
