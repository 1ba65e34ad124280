package wal

// The typed record stored in a frame (frame.go): a Block, msgpack-encoded.

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"sync"

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

// encodeBlock returns the frame (the Pebble value) holding b, in a slice
// of its own.
func encodeBlock(b Block) ([]byte, error) {
	e := getBlockEncoder()
	defer e.release()
	frame, err := e.encode(b)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(frame), nil
}

// blockEncoder encodes blocks into a buffer it keeps: Append encodes
// every block, and a new msgpack encoder and a new frame buffer for each
// (its whole records, again) was garbage on the ingest path. Pebble
// copies what it is given, so the frame is free again once Append has
// written it.
type blockEncoder struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

var blockEncoders = sync.Pool{New: func() any {
	e := &blockEncoder{}
	e.enc = msgpack.NewEncoder(&e.buf)
	return e
}}

func getBlockEncoder() *blockEncoder { return blockEncoders.Get().(*blockEncoder) }

// release returns e to the pool, unless it grew past maxPooledFrame (a
// rare huge block should not pin its memory).
func (e *blockEncoder) release() {
	if e.buf.Cap() <= maxPooledFrame {
		blockEncoders.Put(e)
	}
}

const maxPooledFrame = 1 << 20

// encode returns the frame holding b; it is valid until e is released or
// used again. The bytes are those of a fresh msgpack.Encoder, which
// Append's check of a re-appended block (sameAsStored) compares with.
func (e *blockEncoder) encode(b Block) ([]byte, error) {
	e.buf.Reset()
	e.buf.Grow(headerLen + b.size())
	e.buf.Write(make([]byte, headerLen))
	if err := e.enc.Encode(&b); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return sealFrame(e.buf.Bytes())
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
	if b, ok := decodeBlockFast(payload); ok {
		if b.ID != id {
			return Block{}, corrupt(fmt.Errorf("payload holds block %s, not the block its key names", b.ID))
		}
		return b, nil
	}
	var b Block
	r := bytes.NewReader(payload)
	dec := blockDecoders.Get().(*msgpack.Decoder)
	dec.Reset(r)
	err = dec.Decode(&b)
	dec.Reset(nil)
	blockDecoders.Put(dec)
	if err != nil {
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

// blockDecoders saves a msgpack decoder per block read.
var blockDecoders = sync.Pool{New: func() any { return msgpack.NewDecoder(nil) }}
