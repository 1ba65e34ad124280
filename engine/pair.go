package engine

import "fmt"

// Pair is a key-value record, the element of a pair DStream (Spark's
// (K, V) tuple). It prints as Spark prints a tuple: "(k,v)".
type Pair[K comparable, V any] struct {
	Key   K
	Value V
}

// KV makes a Pair.
func KV[K comparable, V any](k K, v V) Pair[K, V] { return Pair[K, V]{Key: k, Value: v} }

func (p Pair[K, V]) String() string { return fmt.Sprintf("(%v,%v)", p.Key, p.Value) }

// Tuple2 holds the two sides of a joined record: Spark's (V, W).
type Tuple2[A, B any] struct {
	First  A
	Second B
}

func (t Tuple2[A, B]) String() string { return fmt.Sprintf("(%v,%v)", t.First, t.Second) }

// Option is a value that may be absent, as Scala's Option in the outer
// joins. It prints as Scala does: "Some(v)" or "None".
type Option[T any] struct {
	Value T
	Valid bool
}

// Some makes a present Option.
func Some[T any](v T) Option[T] { return Option[T]{Value: v, Valid: true} }

// None makes an absent Option.
func None[T any]() Option[T] { return Option[T]{} }

func (o Option[T]) String() string {
	if !o.Valid {
		return "None"
	}
	return fmt.Sprintf("Some(%v)", o.Value)
}
