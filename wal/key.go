package wal

// Pebble keys of blocks; the layout is drawn in wal.go.

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// blockKey returns the Pebble key of id, or an error wrapping ErrInvalidID
// if the key format cannot hold id.
func blockKey(id BlockID) ([]byte, error) {
	if err := checkNames(id.Stream, id.Node); err != nil {
		return nil, err
	}
	key := make([]byte, 0, 1+len(id.Stream)+1+len(id.Node)+1+seqLen)
	key = append(key, keyPrefix)
	key = append(key, id.Stream...)
	key = append(key, keySep)
	key = append(key, id.Node...)
	key = append(key, keySep)
	return binary.BigEndian.AppendUint64(key, id.Seq), nil
}

// checkNames accepts the stream and node names of a block id.
func checkNames(stream, node string) error {
	if err := checkName("stream", stream); err != nil {
		return err
	}
	return checkName("node", node)
}

// checkName accepts a stream or node name the key format can hold.
func checkName(what, name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty %s name", ErrInvalidID, what)
	}
	if i := bytes.IndexByte([]byte(name), keySep); i >= 0 {
		return fmt.Errorf("%w: %s name %q has a 0x00 byte at %d; the key format uses 0x00 as its separator", ErrInvalidID, what, name, i)
	}
	return nil
}

// blockKeys returns the keys of ids, failing on the first invalid one.
func blockKeys(ids []BlockID) ([][]byte, error) {
	keys := make([][]byte, len(ids))
	for i, id := range ids {
		key, err := blockKey(id)
		if err != nil {
			return nil, fmt.Errorf("wal: delete %s: %w", id, err)
		}
		keys[i] = key
	}
	return keys, nil
}

// seqRange returns the bounds [lo, hi) of the keys of (stream, node).
func seqRange(stream, node string) (lo, hi []byte, err error) {
	key, err := blockKey(BlockID{Stream: stream, Node: node})
	if err != nil {
		return nil, nil, err
	}
	lo = key[:len(key)-seqLen]
	hi = append(bytes.Clone(lo[:len(lo)-1]), keySep+1)
	return lo, hi, nil
}

// parseBlockKey returns the id a block key holds, or a *CorruptionError
// if key is not a well-formed block key.
func parseBlockKey(key []byte) (BlockID, *CorruptionError) {
	bad := func(why string) (BlockID, *CorruptionError) {
		return BlockID{}, &CorruptionError{Key: bytes.Clone(key), Reason: "malformed key: " + why}
	}
	if len(key) < 1+1+1+1+1+seqLen || key[0] != keyPrefix {
		return bad("too short or wrong prefix")
	}
	rest := key[1 : len(key)-seqLen]
	stream, node, ok := bytes.Cut(rest, []byte{keySep})
	if !ok || len(node) < 2 || node[len(node)-1] != keySep {
		return bad("missing 0x00 separator")
	}
	node = node[:len(node)-1]
	if len(stream) == 0 || len(node) == 0 || bytes.IndexByte(node, keySep) >= 0 {
		return bad("empty name or stray 0x00")
	}
	seq := binary.BigEndian.Uint64(key[len(key)-seqLen:])
	return BlockID{Stream: string(stream), Node: string(node), Seq: seq}, nil
}
