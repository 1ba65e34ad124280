package recovery

// An FSM snapshot is the whole state in one envelope. raft's
// FileSnapshotStore keeps it as Dir/snapshots/<id>/state.bin (with raft's
// meta.json beside it, which holds raft's own CRC-64 of the file). The
// layout is part of the on-disk format; integers are big-endian:
//
//	 0        4          8              16          20
//	+--------+----------+--------------+-----------+------------------+
//	| magic  | version  | length       | CRC-32C   | payload          |
//	| "SLFS" | uint32=1 | uint64 bytes | of payload| msgpack          |
//	+--------+----------+--------------+-----------+------------------+
//
// The payload is the msgpack of stateImage (state.go): every map written as
// a slice sorted by key, so one state always encodes to the same bytes.
// Nothing may follow the payload. A reader refuses a wrong magic, a short
// file, trailing bytes, a checksum mismatch, a payload that does not decode
// or whose state breaks an invariant (all corruption), and a version other
// than 1 (ErrSnapshotVersion: written by a newer release).

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/hashicorp/raft"
	"github.com/vmihailenco/msgpack/v5"
)

// Part of the on-disk format.
const (
	snapshotMagic      = "SLFS"
	snapshotVersion    = 1
	snapshotHeaderSize = 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeSnapshot returns the envelope holding s.
func encodeSnapshot(s *state) ([]byte, error) {
	payload, err := msgpack.Marshal(s.image())
	if err != nil {
		return nil, fmt.Errorf("recovery: encode snapshot: %w", err)
	}
	buf := make([]byte, snapshotHeaderSize, snapshotHeaderSize+len(payload))
	copy(buf, snapshotMagic)
	binary.BigEndian.PutUint32(buf[4:], snapshotVersion)
	binary.BigEndian.PutUint64(buf[8:], uint64(len(payload)))
	binary.BigEndian.PutUint32(buf[16:], crc32.Checksum(payload, castagnoli))
	return append(buf, payload...), nil
}

// decodeSnapshot reads one envelope from r. Errors carry offsets but no
// path: the caller knows the file.
func decodeSnapshot(r io.Reader) (*state, error) {
	var hdr [snapshotHeaderSize]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, snapErr(int64(n), "snapshot header is cut short", err)
	}
	if string(hdr[:4]) != snapshotMagic {
		return nil, snapErr(0, fmt.Sprintf("bad magic %q, want %q: not a sluice FSM snapshot", hdr[:4], snapshotMagic), nil)
	}
	if v := binary.BigEndian.Uint32(hdr[4:]); v != snapshotVersion {
		return nil, fmt.Errorf("%w: version %d, this release reads %d: run a release that reads it",
			ErrSnapshotVersion, v, snapshotVersion)
	}
	payload, err := readPayload(r, binary.BigEndian.Uint64(hdr[8:]))
	if err != nil {
		return nil, err
	}
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(hdr[16:]) {
		return nil, snapErr(snapshotHeaderSize, "payload checksum mismatch", nil)
	}
	return decodeImage(payload)
}

// readPayload reads exactly n bytes and checks nothing follows. It grows
// its buffer as data arrives, so a corrupt length cannot allocate much.
func readPayload(r io.Reader, n uint64) ([]byte, error) {
	var buf bytes.Buffer
	got, err := io.Copy(&buf, io.LimitReader(r, int64(min(n, 1<<62))))
	if err != nil {
		return nil, fmt.Errorf("recovery: read snapshot: %w", err)
	}
	if uint64(got) != n {
		return nil, snapErr(snapshotHeaderSize+got, fmt.Sprintf("payload cut short: %d of %d bytes", got, n), nil)
	}
	var one [1]byte
	if k, _ := r.Read(one[:]); k != 0 {
		return nil, snapErr(snapshotHeaderSize+got, "trailing bytes after the payload", nil)
	}
	return buf.Bytes(), nil
}

func decodeImage(payload []byte) (*state, error) {
	var img stateImage
	if err := msgpack.Unmarshal(payload, &img); err != nil {
		return nil, snapErr(snapshotHeaderSize, "payload does not decode", err)
	}
	s := stateFromImage(img)
	if msg := s.check(); msg != "" {
		return nil, snapErr(snapshotHeaderSize, "state breaks an invariant: "+msg, nil)
	}
	return s, nil
}

func snapErr(off int64, reason string, cause error) error {
	if errors.Is(cause, io.ErrUnexpectedEOF) || errors.Is(cause, io.EOF) {
		cause = nil // "cut short" says it
	}
	return &CorruptionError{Offset: off, Reason: reason, Err: cause}
}

// fsmSnapshot holds an encoded state until raft persists it.
type fsmSnapshot struct {
	data      []byte
	persisted chan<- struct{}
}

var _ raft.FSMSnapshot = (*fsmSnapshot)(nil)

// Persist writes the envelope to the sink; raft's sink syncs and publishes
// it on Close.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s.data); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("recovery: write snapshot %s: %w", sink.ID(), err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("recovery: close snapshot %s: %w", sink.ID(), err)
	}
	select {
	case s.persisted <- struct{}{}:
	default:
	}
	return nil
}

// Release drops the encoded state.
func (s *fsmSnapshot) Release() { s.data = nil }
