package engine

import (
	"bytes"
	"encoding"
	"fmt"
	"reflect"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// The engine encodes what it stores (state keys and values, window
// slices) with msgpack, structs as arrays (compact, and the field order
// is the struct's). A type msgpack cannot encode (a func, a channel)
// fails the batch with the operator and key named. Unexported struct
// fields are not encoded: state types must export what they keep.

var encoders = sync.Pool{New: func() any {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseArrayEncodedStructs(true)
	enc.SetSortMapKeys(true) // a map encodes to the same bytes every run
	return &pooledEncoder{buf: &buf, enc: enc}
}}

type pooledEncoder struct {
	buf *bytes.Buffer
	enc *msgpack.Encoder
}

// encodeValue returns the msgpack encoding of v, in a new slice.
func encodeValue(v any) (b []byte, err error) {
	pe := encoders.Get().(*pooledEncoder)
	defer encoders.Put(pe)
	pe.buf.Reset()
	defer func() {
		if r := recover(); r != nil { // msgpack panics on some types
			err = fmt.Errorf("%v", r)
		}
	}()
	if err := pe.enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.Clone(pe.buf.Bytes()), nil
}

func decodeValue(b []byte, v any) error { return msgpack.Unmarshal(b, v) }

// keyCodec turns keys into the bytes the state store orders them by.
// Strings are stored as their bytes; other keys as msgpack.
type keyCodec[K comparable] struct{}

func (keyCodec[K]) encode(k K) ([]byte, error) {
	if s, ok := any(k).(string); ok {
		return []byte(s), nil
	}
	return encodeValue(k)
}

func (keyCodec[K]) decode(b []byte) (K, error) {
	var k K
	if p, ok := any(&k).(*string); ok {
		*p = string(b)
		return k, nil
	}
	err := decodeValue(b, &k)
	return k, err
}

// storedEntry is a state value as stored: the batch time of its last
// update, then the value. Part of the on-disk format of state values.
type storedEntry[S any] struct {
	//lint:ignore U1000 msgpack reads the tag of this field
	_msgpack struct{} `msgpack:",as_array"`
	Updated  int64
	Value    S
}

// storable returns why values of type t cannot be stored faithfully
// (msgpack drops unexported struct fields silently and cannot encode
// funcs or channels), or "" if they can. Types that encode themselves
// (msgpack.CustomEncoder, encoding.BinaryMarshaler) are trusted.
func storable(t reflect.Type) string {
	return storableIn(t, map[reflect.Type]bool{})
}

func storableIn(t reflect.Type, seen map[reflect.Type]bool) string {
	if t == nil || seen[t] {
		return ""
	}
	seen[t] = true
	if t.Implements(customEncoder) || reflect.PointerTo(t).Implements(customEncoder) ||
		t.Implements(binaryMarshaler) || reflect.PointerTo(t).Implements(binaryMarshaler) {
		return ""
	}
	switch t.Kind() {
	case reflect.Func, reflect.Chan, reflect.UnsafePointer:
		return fmt.Sprintf("%s is a %s", t, t.Kind())
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return storableIn(t.Elem(), seen)
	case reflect.Map:
		if why := storableIn(t.Key(), seen); why != "" {
			return why
		}
		return storableIn(t.Elem(), seen)
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() && f.Name != "_msgpack" {
				return fmt.Sprintf("%s has the unexported field %s, which would not be stored", t, f.Name)
			}
			if why := storableIn(f.Type, seen); why != "" {
				return why
			}
		}
	}
	return ""
}

var (
	customEncoder   = reflect.TypeFor[msgpack.CustomEncoder]()
	binaryMarshaler = reflect.TypeFor[encoding.BinaryMarshaler]()
)

// checkStorable records a build error when what the operator stores
// cannot be stored faithfully.
func checkStorable[T any](o *opNode, what string) {
	if why := storable(reflect.TypeFor[T]()); why != "" {
		o.ctx.buildError(o, "its %s cannot be stored: %s; export the fields, or implement msgpack.CustomEncoder and CustomDecoder", what, why)
	}
}
