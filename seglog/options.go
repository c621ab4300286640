package seglog

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/sensehq/sense/vfs"
)

// SyncMode says when appended data is made durable.
type SyncMode uint8

const (
	// SyncAlways acknowledges an append only after fdatasync completed;
	// concurrent appenders share one fdatasync (group commit).
	SyncAlways SyncMode = iota
	// SyncInterval acknowledges once written and fdatasyncs every Interval.
	SyncInterval
	// SyncNever acknowledges once written and leaves flushing to the kernel
	// (data is still synced when a segment rolls, at checkpoints and on
	// Close).
	SyncNever
)

// Durability is the durability policy of a log. The zero value is
// SyncAlways.
type Durability struct {
	Mode     SyncMode
	Interval time.Duration // for SyncInterval
}

// ParseDurability parses "always", "interval:<duration>" (e.g.
// "interval:10ms") or "never".
func ParseDurability(s string) (Durability, error) {
	switch {
	case s == "always" || s == "":
		return Durability{Mode: SyncAlways}, nil
	case s == "never":
		return Durability{Mode: SyncNever}, nil
	case strings.HasPrefix(s, "interval:"):
		d, err := time.ParseDuration(strings.TrimPrefix(s, "interval:"))
		if err != nil || d <= 0 {
			return Durability{}, fmt.Errorf("seglog: fsync policy %q: the interval must be a positive duration such as interval:10ms", s)
		}
		return Durability{Mode: SyncInterval, Interval: d}, nil
	}
	return Durability{}, fmt.Errorf("seglog: fsync policy %q is not one of always, interval:<duration>, never", s)
}

// String returns the policy in the form ParseDurability reads.
func (d Durability) String() string {
	switch d.Mode {
	case SyncInterval:
		return "interval:" + d.Interval.String()
	case SyncNever:
		return "never"
	}
	return "always"
}

// Limits on options.
const (
	MinSegmentBytes = 4 << 10
	MaxSegmentBytes = 1 << 30 // positions in the index are 32-bit
	// MaxGroupCommitInterval bounds Options.GroupCommitInterval: the most
	// pacing can add to an acknowledgement.
	MaxGroupCommitInterval = 10 * time.Millisecond
)

// Options configure a log. The zero value is valid: Validate fills defaults.
type Options struct {
	// FS is the file system; default vfs.Default.
	FS vfs.FS
	// CutCorrupt makes recovery cut the log at a damaged batch (that batch
	// and everything after it), where it would otherwise refuse to open
	// with a *CorruptionError: for a replicated log, whose replicas hold
	// the data and fill it in again. CutAt reports the cut.
	CutCorrupt bool
	// Durability is the fsync policy; default SyncAlways.
	Durability Durability
	// SegmentBytes rolls the active segment when the next batch would take
	// it past this size; default 128 MiB, range [4 KiB, 1 GiB].
	SegmentBytes int64
	// SegmentAge rolls the active segment when its first append is older
	// than this; default 7 days.
	SegmentAge time.Duration
	// IndexIntervalBytes is the spacing of sparse index entries; default
	// 4 KiB.
	IndexIntervalBytes int64
	// CheckpointBytes writes a recovery checkpoint after this many bytes have
	// been appended since the last one; recovery scans at most about this
	// much of the tail. Default 32 MiB.
	CheckpointBytes int64
	// RetentionAge deletes sealed segments whose newest record is older than
	// this; 0 keeps them.
	RetentionAge time.Duration
	// RetentionBytes deletes the oldest sealed segments while the log is
	// larger than this; 0 means no limit.
	RetentionBytes int64
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives recovery and failure reports; default slog.Default().
	Logger *slog.Logger
	// PreallocateBytes, when positive, has the active segment's file
	// extended with written zeros this far ahead of its end (up to
	// SegmentBytes), in the background, that growth fdatasynced once, so
	// that the fdatasync of an append overwrites allocated blocks and need
	// not persist a new file size (measured here: an append+fdatasync about
	// 30% faster at the median). Off when 0 or negative, and with
	// SyncNever (no append is fdatasynced); a node sets it
	// from storage.preallocate_bytes (1 MiB by default: 8 MiB extensions
	// delayed the appends' fdatasyncs enough to raise the ack p99).
	PreallocateBytes int64
	// Files is the cache of open segment files, shared by the logs of a
	// process so that their open files stay within its limit; default a
	// cache of the log's own, without a limit.
	Files *Files
	// GroupCommitInterval, when positive, paces a log's group commits
	// under SyncAlways while appends keep arriving: a group commit called
	// for once the previous one has ended, when appends arrived while
	// that one's fdatasync ran, starts no sooner than GroupCommitInterval
	// after that one started, and takes in what is appended meanwhile. A
	// log that was idle during its last fdatasync syncs at once, and Sync
	// is never paced. On disks whose fdatasyncs stall when they come back
	// to back (a VM's throttled volume), fewer, larger fdatasyncs lower
	// the acknowledgement tail at a small cost to the median
	// (docs/storage.md, "Pacing group commits"). 0 syncs back to back; a
	// node sets it from durability.group_commit_interval.
	GroupCommitInterval time.Duration
	// ObserveSync, when set, is called with the duration of every
	// fdatasync of a segment (for a latency metric). It must be quick.
	ObserveSync func(time.Duration)
	// Compaction, when enabled, has the log compact its sealed segments
	// in the background (compact.go) whenever they are dirty enough;
	// SetCompaction changes it. A replicated log leaves it off: its leader
	// decides when every replica compacts (package replica).
	Compaction CompactPolicy
	// ObserveCompaction, when set, is called after each background
	// compaction pass that ran (for metrics). It must be quick.
	ObserveCompaction func(CompactStats, error)
}

// CompactPolicy is when and how a log is compacted (Kafka's
// cleanup.policy compact and the settings that go with it).
type CompactPolicy struct {
	// Enabled turns compaction on.
	Enabled bool
	// TombstoneAge is how long a tombstone that is the latest record of
	// its key stays, from its timestamp (Kafka's delete.retention.ms);
	// default 24 hours.
	TombstoneAge time.Duration
	// MinLag keeps a record from compaction until its segment's newest
	// record is this old (Kafka's min.compaction.lag.ms); default 0.
	MinLag time.Duration
	// DirtyRatio: a pass runs once the sealed bytes not compacted yet are
	// at least this share of all sealed bytes (Kafka's
	// min.cleanable.dirty.ratio); default 0.5, in (0, 1].
	DirtyRatio float64
}

// DefaultTombstoneAge is CompactPolicy.TombstoneAge's default, Kafka's.
const DefaultTombstoneAge = 24 * time.Hour

// DefaultDirtyRatio is CompactPolicy.DirtyRatio's default, Kafka's.
const DefaultDirtyRatio = 0.5

// Validate fills defaults and rejects bad values.
func (p *CompactPolicy) Validate() error {
	if p.TombstoneAge == 0 {
		p.TombstoneAge = DefaultTombstoneAge
	}
	if p.DirtyRatio == 0 {
		p.DirtyRatio = DefaultDirtyRatio
	}
	switch {
	case p.TombstoneAge < 0:
		return fmt.Errorf("seglog: compaction TombstoneAge %v is negative", p.TombstoneAge)
	case p.MinLag < 0:
		return fmt.Errorf("seglog: compaction MinLag %v is negative", p.MinLag)
	case !(p.DirtyRatio > 0 && p.DirtyRatio <= 1):
		return fmt.Errorf("seglog: compaction DirtyRatio %v outside (0, 1]", p.DirtyRatio)
	}
	return nil
}

// Validate fills defaults and rejects bad values, naming the field.
func (o *Options) Validate() error {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Files == nil {
		o.Files = NewFiles(0)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.SegmentBytes < MinSegmentBytes || o.SegmentBytes > MaxSegmentBytes {
		return fmt.Errorf("seglog: SegmentBytes %d outside [%d, %d]", o.SegmentBytes, MinSegmentBytes, MaxSegmentBytes)
	}
	if o.SegmentAge == 0 {
		o.SegmentAge = 7 * 24 * time.Hour
	}
	if o.SegmentAge < 0 {
		return fmt.Errorf("seglog: SegmentAge %v is negative", o.SegmentAge)
	}
	if o.IndexIntervalBytes == 0 {
		o.IndexIntervalBytes = 4 << 10
	}
	if o.IndexIntervalBytes < 0 {
		return fmt.Errorf("seglog: IndexIntervalBytes %d is negative", o.IndexIntervalBytes)
	}
	if o.CheckpointBytes == 0 {
		o.CheckpointBytes = 32 << 20
	}
	if o.CheckpointBytes < 0 {
		return fmt.Errorf("seglog: CheckpointBytes %d is negative", o.CheckpointBytes)
	}
	if o.RetentionAge < 0 {
		return fmt.Errorf("seglog: RetentionAge %v is negative", o.RetentionAge)
	}
	if o.RetentionBytes < 0 {
		return fmt.Errorf("seglog: RetentionBytes %d is negative", o.RetentionBytes)
	}
	if err := o.Compaction.Validate(); err != nil {
		return err
	}
	if o.GroupCommitInterval < 0 || o.GroupCommitInterval > MaxGroupCommitInterval {
		return fmt.Errorf("seglog: GroupCommitInterval %v outside [0, %v]", o.GroupCommitInterval, MaxGroupCommitInterval)
	}
	switch o.Durability.Mode {
	case SyncAlways, SyncNever:
	case SyncInterval:
		if o.Durability.Interval <= 0 {
			return fmt.Errorf("seglog: Durability interval %v must be positive", o.Durability.Interval)
		}
	default:
		return fmt.Errorf("seglog: Durability mode %d unknown", o.Durability.Mode)
	}
	return nil
}

// DefaultSegmentBytes is Options.SegmentBytes's default.
const DefaultSegmentBytes = 128 << 20
