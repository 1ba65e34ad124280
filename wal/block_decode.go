package wal

// decodeBlockFast decodes a payload laid out exactly as encodeBlock writes
// it (msgpack: a map of "id", itself a map of "stream", "node" and "seq",
// then "records", an array of strings) into a Block whose strings are
// substrings of one copy of the payload: one allocation a block instead
// of one a record, on the path every batch reads its input by. ok is
// false for any other layout, valid msgpack or not: the msgpack decoder
// then decides, so what a payload decodes to, and which payloads fail,
// is unchanged.
func decodeBlockFast(payload []byte) (b Block, ok bool) {
	r := msgReader{s: string(payload)}
	if r.mapLen() != 2 || r.str() != "id" || r.mapLen() != 3 || r.str() != "stream" {
		return Block{}, false
	}
	b.ID.Stream = r.str()
	if r.str() != "node" {
		return Block{}, false
	}
	b.ID.Node = r.str()
	if r.str() != "seq" {
		return Block{}, false
	}
	b.ID.Seq = r.uint()
	if r.str() != "records" {
		return Block{}, false
	}
	if n, isNil := r.arrayLen(); !isNil && !r.bad {
		b.Records = make([]string, n)
		for i := range b.Records {
			b.Records[i] = r.str()
		}
	}
	if r.bad || len(r.s) != 0 {
		return Block{}, false
	}
	return b, true
}

// msgReader reads msgpack values off the front of s. A value of another
// type, or one cut short, sets bad; every later read returns zero.
type msgReader struct {
	s   string
	bad bool
}

// take returns the next n bytes.
func (r *msgReader) take(n int) string {
	if r.bad || n < 0 || n > len(r.s) {
		r.bad = true
		return ""
	}
	v := r.s[:n]
	r.s = r.s[n:]
	return v
}

func (r *msgReader) byte() byte {
	if v := r.take(1); v != "" {
		return v[0]
	}
	return 0
}

// be reads an n-byte big-endian length or integer.
func (r *msgReader) be(n int) uint64 {
	var x uint64
	for _, c := range []byte(r.take(n)) {
		x = x<<8 | uint64(c)
	}
	return x
}

func (r *msgReader) mapLen() int {
	switch c := r.byte(); {
	case c >= 0x80 && c <= 0x8f:
		return int(c & 0x0f)
	case c == 0xde:
		return int(r.be(2))
	case c == 0xdf:
		return int(r.be(4))
	}
	r.bad = true
	return 0
}

// arrayLen reads an array's length, or a nil (isNil).
func (r *msgReader) arrayLen() (n int, isNil bool) {
	switch c := r.byte(); {
	case c >= 0x90 && c <= 0x9f:
		return int(c & 0x0f), false
	case c == 0xdc:
		return int(r.be(2)), false
	case c == 0xdd:
		n = int(r.be(4))
		if n > len(r.s) { // each element takes a byte at least
			r.bad = true
		}
		return n, false
	case c == 0xc0:
		return 0, true
	}
	r.bad = true
	return 0, false
}

func (r *msgReader) str() string {
	switch c := r.byte(); {
	case c >= 0xa0 && c <= 0xbf:
		return r.take(int(c & 0x1f))
	case c == 0xd9:
		return r.take(int(r.be(1)))
	case c == 0xda:
		return r.take(int(r.be(2)))
	case c == 0xdb:
		return r.take(int(r.be(4)))
	}
	r.bad = true
	return ""
}

func (r *msgReader) uint() uint64 {
	switch c := r.byte(); {
	case c <= 0x7f:
		return uint64(c)
	case c == 0xcc:
		return r.be(1)
	case c == 0xcd:
		return r.be(2)
	case c == 0xce:
		return r.be(4)
	case c == 0xcf:
		return r.be(8)
	}
	r.bad = true
	return 0
}
