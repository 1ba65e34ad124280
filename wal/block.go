package wal

// The typed record stored in a frame (frame.go): a Block, msgpack-encoded.

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"github.com/vmihailenco/msgpack/v5"
)

// BlockID names a block: the input stream it belongs to, the node whose
// receiver cut it, and a sequence number that increases per (Stream, Node).
// The msgpack field names are part of the on-disk format.
type BlockID struct {
	Stream string `msgpack:"stream"`
	Node   string `msgpack:"node"`
	Seq    uint64 `msgpack:"seq"`
}

// String returns "stream/node/seq".
func (id BlockID) String() string {
	return id.Stream + "/" + id.Node + "/" + strconv.FormatUint(id.Seq, 10)
}

// Block is a chunk of records of one input stream. It is immutable once
// written. The msgpack field names are part of the on-disk format.
type Block struct {
	ID      BlockID  `msgpack:"id"`
	Records []string `msgpack:"records"`
}

// size estimates the encoded size of b, to size its buffer once.
func (b Block) size() int {
	n := 64 + len(b.ID.Stream) + len(b.ID.Node)
	for _, r := range b.Records {
		n += len(r) + 5
	}
	return n
}

// encodeBlock returns the frame (the Pebble value) holding b.
func encodeBlock(b Block) ([]byte, error) {
	buf := bytes.NewBuffer(newFrame(b.size()))
	if err := msgpack.NewEncoder(buf).Encode(&b); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return sealFrame(buf.Bytes())
}

// decodeBlock checks and decodes the value stored under key, which holds
// the block id. The result shares no memory with value.
func decodeBlock(id BlockID, key, value []byte) (Block, *CorruptionError) {
	corrupt := func(err error) *CorruptionError {
		return &CorruptionError{Block: id, Key: bytes.Clone(key), Reason: err.Error(), Err: errors.Unwrap(err)}
	}
	payload, err := openFrame(value)
	if err != nil {
		return Block{}, corrupt(err)
	}
	var b Block
	r := bytes.NewReader(payload)
	if err := msgpack.NewDecoder(r).Decode(&b); err != nil {
		return Block{}, corrupt(fmt.Errorf("undecodable payload: %v", err))
	}
	if r.Len() != 0 {
		return Block{}, corrupt(fmt.Errorf("%d bytes after the msgpack payload", r.Len()))
	}
	if b.ID != id {
		return Block{}, corrupt(fmt.Errorf("payload holds block %s, not the block its key names", b.ID))
	}
	return b, nil
}
