package checkpoint

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"path"
	"strconv"
	"strings"

	"github.com/vmihailenco/msgpack/v5"
)

// The on-disk format of a checkpoint.
//
// A checkpoint is one directory under the root, named after its batch time
// (nameFor): the Pebble copy in data/, and a descriptor, CHECKPOINT, that
// lists every file of the copy with its size and CRC-32C.
//
//	root/
//	  ckpt-00000001764064800000/      batch time in ms, 20 digits, zero-padded
//	    CHECKPOINT                    the descriptor, below
//	    data/                         the copy of the state store
//	      000004.sst  MANIFEST-000001  OPTIONS-000003  ...
//	  ckpt-00000001764064860000.tmp/  a Write in progress, or a crash's leftover
//	  ckpt-00000001764064740000.broken-1764065000/   moved aside as corrupt
//
// The descriptor is one frame around the msgpack encoding of the Manifest.
// Integers are big-endian.
//
//	 0        4         5          9          13
//	+--------+---------+----------+----------+-------------------------------+
//	| magic  | version | length   | crc32c   | payload (length bytes)        |
//	| 4B     | 1B      | uint32   | uint32   | msgpack Manifest:             |
//	| "SLCK" | 1       | of       | of       | {"a": app, "g": fingerprint,  |
//	|        |         | payload  | payload  |  "t": batch time (ms),        |
//	|        |         |          |          |  "f": [{"n": name, "s": size, |
//	|        |         |          |          |         "c": crc32c}, ...]}   |
//	+--------+---------+----------+----------+-------------------------------+
//
// The frame checksum is CRC-32C (Castagnoli) of the payload alone; magic,
// version and length are checked by value, and the file must be exactly
// headerLen+length bytes long. File names are relative to data/, separated
// by "/", and sorted, each listed once. The Ref the metadata log stores
// carries the CRC-32C of the whole descriptor file (header and payload),
// which ties the log entry to exactly one descriptor.
//
// Every constant below is part of the on-disk format: changing one makes
// existing checkpoints unreadable. A new format gets a new formatVersion,
// and readers keep decoding every older version.

const (
	// frameMagic opens every descriptor: "SLCK", Sluice ChecKpoint. Part of
	// the on-disk format.
	frameMagic uint32 = 0x534c434b
	// formatVersion is the descriptor version this code writes, and the
	// newest it reads. Part of the on-disk format.
	formatVersion byte = 1
	// headerLen is the size of the frame header: magic, version, length,
	// checksum. Part of the on-disk format.
	headerLen = 4 + 1 + 4 + 4
	// maxPayload is the largest payload the length field can describe.
	maxPayload = 1<<32 - 1

	// descriptorName is the descriptor's file name in a checkpoint
	// directory. Part of the on-disk format.
	descriptorName = "CHECKPOINT"
	// dataDirName is the directory holding the copy. Part of the on-disk
	// format.
	dataDirName = "data"
	// namePrefix and nameDigits make a checkpoint's directory name from its
	// batch time: "ckpt-" and 20 zero-padded decimal digits, so names sort
	// as times do. Part of the on-disk format.
	namePrefix = "ckpt-"
	nameDigits = 20
	// tmpSuffix marks a directory being written. Part of the on-disk format:
	// Open removes every directory carrying it.
	tmpSuffix = ".tmp"
	// brokenSuffix marks a directory moved aside as corrupt; the Unix time
	// of the move follows it. Part of the on-disk format: nothing in this
	// package deletes such a directory.
	brokenSuffix = ".broken-"
)

// castagnoli is the CRC-32C table. Part of the on-disk format.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Meta is what the caller says about a checkpoint being written, and what
// Verify checks a checkpoint against.
type Meta struct {
	App         string `msgpack:"a"` // application name
	Fingerprint string `msgpack:"g"` // graph fingerprint (hex)
	Time        int64  `msgpack:"t"` // batch time in ms since the epoch
}

// Ref is what the metadata log stores to reference a checkpoint. Only a
// checkpoint a Ref in the log points at is trusted.
type Ref struct {
	Time int64  `msgpack:"t"`
	Name string `msgpack:"n"` // directory name under the root, e.g. "ckpt-00000001764064800000"
	Sum  uint32 `msgpack:"s"` // CRC-32C (Castagnoli) of the descriptor file's bytes
}

// Manifest is the decoded descriptor.
type Manifest struct {
	Meta  `msgpack:",inline"`
	Files []File `msgpack:"f"` // every file of the copy, relative to data/, sorted by name
}

// File is one file of a checkpoint's copy.
type File struct {
	Name string `msgpack:"n"` // relative to data/, "/"-separated
	Size int64  `msgpack:"s"` // in bytes
	CRC  uint32 `msgpack:"c"` // CRC-32C (Castagnoli) of the contents
}

// nameFor returns the directory name of the checkpoint at batch time t.
func nameFor(t int64) string { return fmt.Sprintf("%s%0*d", namePrefix, nameDigits, t) }

// parseName returns the batch time a checkpoint directory name stands for,
// and false if name is not one nameFor returns.
func parseName(name string) (int64, bool) {
	digits, ok := strings.CutPrefix(name, namePrefix)
	if !ok || len(digits) != nameDigits {
		return 0, false
	}
	for _, c := range []byte(digits) {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	t, err := strconv.ParseInt(digits, 10, 64)
	if err != nil { // out of range
		return 0, false
	}
	return t, true
}

// encodeDescriptor returns the descriptor file's bytes for m.
func encodeDescriptor(m Manifest) ([]byte, error) {
	payload, err := msgpack.Marshal(&m)
	if err != nil {
		return nil, fmt.Errorf("encode the descriptor: %w", err)
	}
	if uint64(len(payload)) > maxPayload {
		return nil, fmt.Errorf("descriptor payload of %d bytes exceeds the frame limit of %d", len(payload), uint64(maxPayload))
	}
	frame := make([]byte, headerLen, headerLen+len(payload))
	binary.BigEndian.PutUint32(frame[0:4], frameMagic)
	frame[4] = formatVersion
	binary.BigEndian.PutUint32(frame[5:9], uint32(len(payload)))
	binary.BigEndian.PutUint32(frame[9:13], crc32.Checksum(payload, castagnoli))
	return append(frame, payload...), nil
}

// openFrame checks a descriptor's framing and returns its payload, which
// aliases frame. An error says what is wrong, in words fit for a
// CorruptionError's Reason; it wraps ErrVersion for a newer version.
func openFrame(frame []byte) ([]byte, error) {
	if len(frame) < headerLen {
		return nil, fmt.Errorf("truncated descriptor: %d bytes, shorter than the %d-byte header", len(frame), headerLen)
	}
	if m := binary.BigEndian.Uint32(frame[0:4]); m != frameMagic {
		return nil, fmt.Errorf("bad magic %#08x, want %#08x", m, frameMagic)
	}
	switch v := frame[4]; {
	case v == 0:
		return nil, errors.New("bad version 0: no version of sluice writes it")
	case v > formatVersion:
		return nil, fmt.Errorf("%w: descriptor version %d, this binary reads up to %d", ErrVersion, v, formatVersion)
	}
	payload := frame[headerLen:]
	n := binary.BigEndian.Uint32(frame[5:9])
	if uint64(len(payload)) < uint64(n) {
		return nil, fmt.Errorf("truncated descriptor: header says %d payload bytes, %d present", n, len(payload))
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

// decodeManifest decodes a payload openFrame returned and checks that its
// file list is one Write could have written. An error is a Reason.
func decodeManifest(payload []byte) (Manifest, error) {
	var m Manifest
	if err := msgpack.Unmarshal(payload, &m); err != nil {
		return Manifest{}, fmt.Errorf("undecodable payload: %v", err)
	}
	for i, f := range m.Files {
		if !validFileName(f.Name) {
			return Manifest{}, fmt.Errorf("file %d has an invalid name %q", i, f.Name)
		}
		if f.Size < 0 {
			return Manifest{}, fmt.Errorf("file %q has a negative size %d", f.Name, f.Size)
		}
		if i > 0 && m.Files[i-1].Name >= f.Name {
			return Manifest{}, fmt.Errorf("files not sorted or listed twice: %q before %q", m.Files[i-1].Name, f.Name)
		}
	}
	return m, nil
}

// validFileName reports whether name is a clean relative "/"-separated
// path that stays inside data/.
func validFileName(name string) bool {
	return name != "" && name != "." && !strings.HasPrefix(name, "/") &&
		path.Clean(name) == name && name != ".." && !strings.HasPrefix(name, "../")
}
