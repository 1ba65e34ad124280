package rpc

// Wire format of the one TCP port a node listens on.
//
// Every accepted connection starts with one lane byte that says who reads
// the rest of it:
//
//	+------+
//	| lane |  'R' (0x52): hashicorp/raft's NetworkTransport stream follows,
//	+------+              in raft's own encoding, untouched by this package
//	          'M' (0x4D): Sluice RPC follows
//
// An RPC connection continues with a preamble, then frames in both
// directions until either side closes it:
//
//	+------+-----+-----+-----+-----+---------+
//	| 'M'  | 'S' | 'L' | 'R' | 'P' | version |   version = 1
//	+------+-----+-----+-----+-----+---------+
//
//	+----------------+----------------+--------------------------+
//	| length (4, BE) | crc32c (4, BE) | msgpack payload (length) |
//	+----------------+----------------+--------------------------+
//
// length counts the payload only; crc32c (Castagnoli) covers the payload
// only. A frame longer than Options.MaxFrame is refused before it is read.
//
// The payload of a client→server frame is a request, a msgpack array:
//
//	[ id uint64, from string, method string, deadline_unix_ms int64, body bin ]
//
// and of a server→client frame a response, a msgpack array:
//
//	[ id uint64, code string, message string, body bin ]
//
// id is chosen by the client, unique among its calls in flight on that
// connection; responses may come back in any order and are matched by id.
// deadline_unix_ms 0 means no deadline. code "" means success; otherwise
// code and message form the *Error the caller receives. body is the
// msgpack encoding of the call's request or response value.
//
// Anything else (bad magic, unknown version, bad checksum, oversize frame,
// a payload that does not decode) makes the receiver log a warning with the
// remote address and close that connection; other connections carry on.

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"net"

	"github.com/vmihailenco/msgpack/v5"
)

// Lane bytes, magic and version: part of the wire format, never change them.
const (
	laneRaft     byte   = 'R'
	laneRPC      byte   = 'M'
	magic        string = "SLRP"
	wireVersion  byte   = 1
	frameHeader         = 8 // length + crc32c
	preambleSize        = 1 + len(magic) + 1
)

// DefaultMaxFrame is the largest payload accepted when Options.MaxFrame is 0.
const DefaultMaxFrame = 64 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// request is the payload of a client→server frame. Field order is part of
// the wire format (encoded as a msgpack array).
type request struct {
	//lint:ignore U1000 msgpack reads the tag of this field
	_msgpack   struct{} `msgpack:",as_array"`
	ID         uint64
	From       string
	Method     string
	DeadlineMS int64
	Body       []byte
}

// response is the payload of a server→client frame. Field order is part of
// the wire format (encoded as a msgpack array).
type response struct {
	//lint:ignore U1000 msgpack reads the tag of this field
	_msgpack struct{} `msgpack:",as_array"`
	ID       uint64
	Code     string
	Message  string
	Body     []byte
}

// rpcPreamble is what a client writes first on an RPC connection.
func rpcPreamble() []byte {
	return append(append([]byte{laneRPC}, magic...), wireVersion)
}

// checkPreamble validates the bytes after the lane byte.
func checkPreamble(b []byte) error {
	if string(b[:len(magic)]) != magic {
		return fmt.Errorf("%w: magic %q, want %q", ErrVersion, b[:len(magic)], magic)
	}
	if v := b[len(magic)]; v != wireVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrVersion, v, wireVersion)
	}
	return nil
}

// readFrame reads one frame and returns its verified payload. An I/O error
// is returned as is; a bad frame is ErrMalformed with the reason.
func readFrame(r io.Reader, maxFrame int) ([]byte, error) {
	var h [frameHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(h[0:4])
	if uint64(n) > uint64(maxFrame) {
		return nil, fmt.Errorf("%w: length %d over max frame %d", ErrMalformed, n, maxFrame)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if got, want := crc32.Checksum(payload, castagnoli), binary.BigEndian.Uint32(h[4:8]); got != want {
		return nil, fmt.Errorf("%w: crc32c %08x, header says %08x", ErrMalformed, got, want)
	}
	return payload, nil
}

// decodePayload decodes a frame payload into v (a *request or *response).
func decodePayload(payload []byte, v any) error {
	if err := msgpack.Unmarshal(payload, v); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// writeFrame writes payload framed (frame.go), header and payload in one
// vectored write so big bodies are not copied.
func writeFrame(w io.Writer, payload []byte) error {
	var h [frameHeader]byte
	binary.BigEndian.PutUint32(h[0:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(h[4:8], crc32.Checksum(payload, castagnoli))
	bufs := net.Buffers{h[:], payload}
	_, err := bufs.WriteTo(w)
	return err
}
