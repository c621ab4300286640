package seglog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/sensehq/sense/batch"
	"github.com/sensehq/sense/vfs"
)

// The checkpoint file records a point up to which the log is known durable
// and intact, so recovery scans only what follows it:
//
//	 0  [8]byte "SENSECP1"
//	 8  int64   next offset at the checkpoint
//	16  int64   base offset of the segment holding the checkpoint
//	24  int64   byte position in that segment
//	32  ...     producer snapshot (see producer.go)
//	end uint32  CRC-32C of everything before it
//
// It is written to checkpoint.tmp, synced, renamed over checkpoint, and the
// directory is synced.
const (
	checkpointName  = "checkpoint"
	checkpointTmp   = "checkpoint.tmp"
	checkpointMagic = "SENSECP1"
	// maxCheckpointSize bounds what Open reads: a million producers.
	maxCheckpointSize = 36 + 1<<20*(11+window*seqEntrySize)
)

type checkpoint struct {
	next    int64
	segBase int64
	pos     int64
	prods   producers
}

func encodeCheckpoint(next, segBase, pos int64, prods producers) []byte {
	b := make([]byte, 0, 64+len(prods)*(11+window*seqEntrySize))
	b = append(b, checkpointMagic...)
	b = binary.BigEndian.AppendUint64(b, uint64(next))
	b = binary.BigEndian.AppendUint64(b, uint64(segBase))
	b = binary.BigEndian.AppendUint64(b, uint64(pos))
	b = prods.appendTo(b)
	return binary.BigEndian.AppendUint32(b, batch.Checksum(b))
}

func decodeCheckpoint(b []byte) (checkpoint, error) {
	var c checkpoint
	if len(b) < 36 || string(b[:8]) != checkpointMagic {
		return c, errors.New("checkpoint: bad magic or too short")
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if batch.Checksum(body) != sum {
		return c, errors.New("checkpoint: CRC mismatch")
	}
	c.next = int64(binary.BigEndian.Uint64(body[8:]))
	c.segBase = int64(binary.BigEndian.Uint64(body[16:]))
	c.pos = int64(binary.BigEndian.Uint64(body[24:]))
	if c.next < 0 || c.segBase < 0 || c.pos < 0 || c.segBase > c.next {
		return c, fmt.Errorf("checkpoint: inconsistent values next=%d segment=%d position=%d", c.next, c.segBase, c.pos)
	}
	prods, rest, err := decodeProducers(body[32:])
	if err != nil {
		return c, fmt.Errorf("checkpoint: %w", err)
	}
	if len(rest) != 0 {
		return c, fmt.Errorf("checkpoint: %d trailing bytes", len(rest))
	}
	c.prods = prods
	return c, nil
}

// writeCheckpoint replaces the checkpoint file atomically and durably.
func writeCheckpoint(fs vfs.FS, dir string, data []byte) error {
	return replaceFile(fs, dir, checkpointName, data)
}

// replaceFile replaces dir/name with data atomically and durably: it
// writes name.tmp, syncs it, renames it over name and syncs the
// directory, so a crash leaves the old file or the new one. A failed sync
// is marked errSync.
func replaceFile(fs vfs.FS, dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := fs.Create(tmp)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("%w: sync %s: %w", errSync, tmp, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := fs.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	if err := fs.SyncDir(dir); err != nil {
		return fmt.Errorf("%w: sync directory %s: %w", errSync, dir, err)
	}
	return nil
}
