package wal

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// TestDecodeBlockFast checks the fast decoder against msgpack's on the
// blocks encodeBlock writes, across every length format of a string, an
// array and an integer: the same Block, and a fallback (ok false) for
// what it does not read, never a different answer.
func TestDecodeBlockFast(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    Block
	}{
		{"nil records", Block{ID: BlockID{"s", "n", 0}}},
		{"empty records", Block{ID: BlockID{"s", "n", 1}, Records: []string{}}},
		{"small", Block{ID: BlockID{"lines", "node-1", 127}, Records: []string{"a", "", "b c"}}},
		{"str8 and uint8", Block{ID: BlockID{"s", "n", 255}, Records: []string{strings.Repeat("x", 200)}}},
		{"str16 and uint16", Block{ID: BlockID{"s", "n", 65535}, Records: []string{strings.Repeat("y", 300)}}},
		{"str32 and uint32", Block{ID: BlockID{"s", "n", 1 << 31}, Records: []string{strings.Repeat("z", 70000)}}},
		{"array16 and uint64", Block{ID: BlockID{"s", "n", 1 << 40}, Records: make([]string, 20)}},
		{"array32", Block{ID: BlockID{"s", "n", 9}, Records: make([]string, 70000)}},
		{"not utf-8", Block{ID: BlockID{"s", "n", 3}, Records: []string{"\xff\xfe", "\x00"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame, err := encodeBlock(tc.b)
			if err != nil {
				t.Fatal(err)
			}
			payload := frame[headerLen:]
			var want Block
			if err := msgpack.NewDecoder(bytes.NewReader(payload)).Decode(&want); err != nil {
				t.Fatal(err)
			}
			got, ok := decodeBlockFast(payload)
			if !ok {
				t.Fatalf("the fast decoder refused a block encodeBlock wrote")
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("fast %+v, msgpack %+v", got.ID, want.ID)
			}
			for cut := range min(len(payload), 64) { // a payload cut short is refused
				if _, ok := decodeBlockFast(payload[:cut]); ok {
					t.Fatalf("accepted the first %d of %d bytes", cut, len(payload))
				}
			}
			if _, ok := decodeBlockFast(append(bytes.Clone(payload), 0)); ok {
				t.Fatal("accepted a byte after the payload")
			}
		})
	}
}

// TestDecodeBlockFastFallsBack checks that a valid msgpack layout other
// than encodeBlock's (keys in another order, a struct as an array) is
// left to msgpack's decoder, which decodes it as before.
func TestDecodeBlockFastFallsBack(t *testing.T) {
	other := map[string]any{"records": []string{"a"}, "id": map[string]any{"seq": 1, "node": "n", "stream": "s"}}
	payload, err := msgpack.Marshal(other)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := decodeBlockFast(payload); ok {
		t.Fatal("the fast decoder read a layout encodeBlock does not write")
	}
	frame, err := sealFrame(append(newFrame(len(payload)), payload...))
	if err != nil {
		t.Fatal(err)
	}
	id := BlockID{"s", "n", 1}
	key, err := blockKey(id)
	if err != nil {
		t.Fatal(err)
	}
	b, cerr := decodeBlock(id, key, frame)
	if cerr != nil || !reflect.DeepEqual(b.Records, []string{"a"}) {
		t.Fatalf("decodeBlock = %+v, %v; want the records msgpack reads", b, cerr)
	}
}
