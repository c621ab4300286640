package replica

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"path/filepath"

	"github.com/sensehq/sense/vfs"
)

// stateFile is the small durable file beside a replica's segments that
// holds what raft needs besides the log: the HardState's term and vote
// (the commit index too, which may be stale: raft learns it again), the
// voters, and the point the log starts after (the raft index and term of
// the entry before the first batch held, and that batch's offset).
const stateFile = "raft.state"

// state is the decoded state file.
type state struct {
	term, vote, commit uint64
	// base: the entry before the log's first batch. A new log has index 0,
	// term 0, offset 0.
	baseIndex, baseTerm uint64
	baseNext            int64
	// start is the log's first offset readers see: at or past baseNext
	// (the log keeps whole segments; Trim moves start to any batch).
	start  int64
	voters []uint64
}

// The state file's formats: SRS1 has six u64 fields, SRS2 a seventh, the
// log's start (an SRS1 file's start is its baseNext).
const (
	stateMagic1  = "SRS1"
	stateMagic   = "SRS2"
	stateFixed1  = 4 + 8*6 + 4 // magic, six u64, voter count
	stateFixed   = 4 + 8*7 + 4 // magic, seven u64, voter count
	maxVoters    = 16
	stateMaxSize = stateFixed + 8*maxVoters + 4
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func (s *state) encode() []byte {
	b := make([]byte, 0, stateFixed+8*len(s.voters)+4)
	b = append(b, stateMagic...)
	for _, v := range []uint64{s.term, s.vote, s.commit, s.baseIndex, s.baseTerm, uint64(s.baseNext), uint64(s.start)} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(s.voters)))
	for _, v := range s.voters {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// decodeState parses a state file; a damaged one is an error, never
// guessed at: raft's vote must not be forgotten.
func decodeState(b []byte) (state, error) {
	var s state
	fixed, fields := stateFixed, 7
	if len(b) >= 4 && string(b[:4]) == stateMagic1 {
		fixed, fields = stateFixed1, 6
	} else if len(b) >= 4 && string(b[:4]) != stateMagic {
		return s, fmt.Errorf("not a raft state file (%d bytes)", len(b))
	}
	if len(b) < fixed+4 || len(b) > stateMaxSize {
		return s, fmt.Errorf("not a raft state file (%d bytes)", len(b))
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return s, errors.New("raft state file fails its checksum")
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(body[4+8*i:]) }
	s.term, s.vote, s.commit, s.baseIndex, s.baseTerm, s.baseNext = u(0), u(1), u(2), u(3), u(4), int64(u(5))
	s.start = s.baseNext
	if fields == 7 {
		s.start = int64(u(6))
	}
	n := int(binary.BigEndian.Uint32(body[4+8*fields:]))
	if n > maxVoters || len(body) != fixed+8*n {
		return s, fmt.Errorf("raft state file lists %d voters in %d bytes", n, len(body))
	}
	for i := range n {
		s.voters = append(s.voters, binary.BigEndian.Uint64(body[fixed+8*i:]))
	}
	if s.baseNext < 0 || s.start < s.baseNext || s.commit < s.baseIndex && s.commit != 0 {
		return s, fmt.Errorf("raft state file is inconsistent: commit %d, log after index %d at offset %d, readers' start %d", s.commit, s.baseIndex, s.baseNext, s.start)
	}
	return s, nil
}

// readState reads dir's state file; ok is false when there is none.
func readState(fsys vfs.FS, dir string) (s state, ok bool, err error) {
	b, err := vfs.ReadFile(fsys, filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return s, false, nil
	}
	if err != nil {
		return s, false, err
	}
	s, err = decodeState(b)
	if err != nil {
		return s, false, fmt.Errorf("%s: %w", filepath.Join(dir, stateFile), err)
	}
	return s, true, nil
}

func writeState(fsys vfs.FS, dir string, s *state) error {
	return vfs.WriteFileAtomic(fsys, filepath.Join(dir, stateFile), s.encode())
}
