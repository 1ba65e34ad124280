package engine

import "fmt"

// OpOption adjusts a key-partitioned or stateful operator.
type OpOption func(*opOptions)

type opOptions struct {
	partitions    int  // used when partitionsSet
	partitionsSet bool // an explicit 0 is a mistake, not "the default"
	initial       any  // []Pair[K, S] for UpdateStateByKey
}

// WithPartitions sets the number of partitions an operator's output (and
// state) is hashed into, in place of Config.Partitions.
func WithPartitions(n int) OpOption {
	return func(o *opOptions) { o.partitions, o.partitionsSet = n, true }
}

// WithInitialState gives UpdateStateByKey the state its keys start with.
func WithInitialState[K comparable, S any](pairs []Pair[K, S]) OpOption {
	return func(o *opOptions) { o.initial = pairs }
}

func applyOptions(opts []OpOption) opOptions {
	var o opOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// partitionCount resolves the partition count of operator kind from the
// options, returning its fingerprint parameter too.
func (o opOptions) partitionCount(c *Context) (int, string) {
	n := o.partitions
	if !o.partitionsSet {
		n = c.cfg.Partitions
	}
	return n, fmt.Sprintf("partitions=%d", n)
}

// checkPartitions records a build error for a bad explicit partition count.
func checkPartitions(o *opNode, n int) {
	if n < 1 {
		o.ctx.buildError(o, "partition count %d must be at least 1", n)
	}
}
