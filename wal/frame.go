package wal

// Byte framing of values, kept apart from the typed Block (block.go) as
// prometheus tsdb keeps wlog apart from record. The layout is drawn in
// wal.go.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// castagnoli is the CRC-32C table. Part of the on-disk format.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// maxPayload is the largest payload a frame's length field can describe.
const maxPayload = 1<<32 - 1

// newFrame returns a buffer of headerLen zero bytes with room for a
// payload of about sizeHint bytes; the caller appends the payload and
// seals the frame.
func newFrame(sizeHint int) []byte {
	return make([]byte, headerLen, headerLen+sizeHint)
}

// sealFrame fills in the header of frame, whose payload follows the
// headerLen bytes newFrame reserved.
func sealFrame(frame []byte) ([]byte, error) {
	payload := frame[headerLen:]
	if uint64(len(payload)) > maxPayload {
		return nil, fmt.Errorf("payload of %d bytes exceeds the frame limit of %d", len(payload), uint64(maxPayload))
	}
	binary.BigEndian.PutUint32(frame[0:4], frameMagic)
	frame[4] = formatVersion
	binary.BigEndian.PutUint32(frame[5:9], uint32(len(payload)))
	binary.BigEndian.PutUint32(frame[9:13], crc32.Checksum(payload, castagnoli))
	return frame, nil
}

// openFrame checks a frame and returns its payload, which aliases frame.
// An error says what is wrong, in words fit for a CorruptionError's
// Reason; it wraps ErrVersion for a frame from a newer version.
func openFrame(frame []byte) ([]byte, error) {
	if len(frame) < headerLen {
		return nil, fmt.Errorf("truncated frame: %d bytes, shorter than the %d-byte header", len(frame), headerLen)
	}
	if m := binary.BigEndian.Uint32(frame[0:4]); m != frameMagic {
		return nil, fmt.Errorf("bad magic %#08x, want %#08x", m, frameMagic)
	}
	if err := checkVersion(frame[4]); err != nil {
		return nil, err
	}
	payload := frame[headerLen:]
	n := binary.BigEndian.Uint32(frame[5:9])
	if uint64(len(payload)) < uint64(n) {
		return nil, fmt.Errorf("truncated frame: header says %d payload bytes, %d present", n, len(payload))
	}
	if uint64(len(payload)) > uint64(n) {
		return nil, fmt.Errorf("%d unexpected bytes after the %d-byte payload", uint64(len(payload))-uint64(n), n)
	}
	stored := binary.BigEndian.Uint32(frame[9:13])
	if got := crc32.Checksum(payload, castagnoli); got != stored {
		return nil, fmt.Errorf("checksum mismatch: stored crc32c %#08x, computed %#08x", stored, got)
	}
	return payload, nil
}

// checkVersion accepts the versions this code reads.
func checkVersion(v byte) error {
	switch {
	case v == 0:
		return errors.New("bad version 0: no version of sluice writes it")
	case v > formatVersion:
		return fmt.Errorf("%w: frame version %d, this binary reads up to %d", ErrVersion, v, formatVersion)
	}
	return nil
}
