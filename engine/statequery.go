package engine

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/sluice-stream/sluice/state"
)

// Errors of the state query API.
var (
	// ErrUnknownOperator: no stateful operator has that name.
	ErrUnknownOperator = errors.New("engine: no stateful operator has that name")
	// ErrUnknownKey: the operator has no committed state for that key.
	ErrUnknownKey = errors.New("engine: no state for that key")
	// ErrNotOrdered: top was asked of state values that are not numbers.
	ErrNotOrdered = errors.New("engine: the state values are not numbers, so they have no top")
)

// StateOperatorInfo describes a stateful operator for the state API.
type StateOperatorInfo struct {
	Name       string `json:"name"`
	ID         int    `json:"id"`
	Kind       string `json:"kind"`
	Partitions int    `json:"partitions"`
	Keys       int64  `json:"keys"`
	DiskBytes  int64  `json:"disk_bytes"`
}

// StateValue is one key's committed state. Batch is the batch time the
// answer is as of (the last completed batch); Updated the batch time of
// the key's last update.
type StateValue struct {
	Key     any  `json:"key"`
	Value   any  `json:"value"`
	Batch   Time `json:"batch"`
	Updated Time `json:"updated"`
}

// stateOperator is what the state API needs of a stateful operator.
type stateOperator interface {
	lookup(v *state.View, key string) (StateValue, bool, error)
	top(v *state.View, n int) ([]StateValue, error)
	partitions() int
}

// stateName is the name a stateful operator is queried by: its Named
// name, else its kind and id ("updateStateByKey-4").
func (o *opNode) stateName() string {
	if o.name != "" {
		return o.name
	}
	return fmt.Sprintf("%s-%d", o.kind, o.id)
}

// StateOperators lists the stateful operators with their committed key
// counts and bytes on disk. It is empty before Start.
func (c *Context) StateOperators() []StateOperatorInfo {
	st := c.stateStore()
	var out []StateOperatorInfo
	for _, o := range c.statefulOps() {
		info := StateOperatorInfo{Name: o.stateName(), ID: o.id, Kind: o.kind, Partitions: o.state.partitions()}
		if st != nil {
			info.Keys, info.DiskBytes = st.Keys(o.id), st.OpDiskBytes(o.id)
		}
		out = append(out, info)
	}
	return out
}

func (c *Context) statefulOps() []*opNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*opNode
	for _, o := range c.ops {
		if o.state != nil {
			out = append(out, o)
		}
	}
	return out
}

// running reports whether the context is started and not stopping.
func (c *Context) running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state == active
}

func (c *Context) stateStore() *state.Store {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.storage == nil || c.state != active {
		return nil
	}
	return c.storage.state
}

func (c *Context) stateOp(name string) (*opNode, *state.Store, error) {
	for _, o := range c.statefulOps() {
		if o.stateName() == name {
			st := c.stateStore()
			if st == nil {
				return nil, nil, ErrNotRunning
			}
			return o, st, nil
		}
	}
	return nil, nil, fmt.Errorf("%w: %q", ErrUnknownOperator, name)
}

// QueryState returns the committed state of key in the stateful operator
// name. A key of a type other than string is given as JSON ("42").
func (c *Context) QueryState(name, key string) (StateValue, error) {
	o, st, err := c.stateOp(name)
	if err != nil {
		return StateValue{}, err
	}
	v, err := st.View()
	if err != nil {
		return StateValue{}, err
	}
	defer v.Close()
	sv, ok, err := o.state.lookup(v, key)
	if err != nil {
		return StateValue{}, err
	}
	if !ok {
		return StateValue{}, fmt.Errorf("%w: operator %q has no state for key %q as of batch %v", ErrUnknownKey, name, key, Time(v.Time))
	}
	return sv, nil
}

// TopState returns the n keys of the stateful operator name with the
// largest numeric state, largest first (ties by key), as committed.
func (c *Context) TopState(name string, n int) ([]StateValue, Time, error) {
	o, st, err := c.stateOp(name)
	if err != nil {
		return nil, 0, err
	}
	v, err := st.View()
	if err != nil {
		return nil, 0, err
	}
	defer v.Close()
	out, err := o.state.top(v, n)
	return out, Time(v.Time), err
}

func (st *stateStores[K, S]) partitions() int { return st.n }

func (st *stateStores[K, S]) lookup(v *state.View, key string) (StateValue, bool, error) {
	k, err := parseKey[K](key)
	if err != nil {
		return StateValue{}, false, fmt.Errorf("%w: %q is not a key of operator %s: %v", ErrUnknownKey, key, st.op.stateName(), err)
	}
	kb, err := st.keys.encode(k)
	if err != nil {
		return StateValue{}, false, err
	}
	raw, ok, err := v.Get(st.op.id, st.part.of(k), kb)
	if err != nil || !ok {
		return StateValue{}, false, err
	}
	e, err := decodeEntry[S](raw)
	if err != nil {
		return StateValue{}, false, st.stateError(k, "decoding", err)
	}
	return StateValue{Key: k, Value: e.val, Batch: Time(v.Time), Updated: e.updated}, true, nil
}

// parseKey reads a key given as text: a string key as it is, any other
// as JSON.
func parseKey[K comparable](s string) (K, error) {
	var k K
	if p, ok := any(&k).(*string); ok {
		*p = s
		return k, nil
	}
	err := json.Unmarshal([]byte(s), &k)
	return k, err
}

func (st *stateStores[K, S]) top(v *state.View, n int) ([]StateValue, error) {
	var zero S
	if !isNumber(reflect.TypeOf(zero)) {
		return nil, fmt.Errorf("%w: operator %s keeps %T", ErrNotOrdered, st.op.stateName(), zero)
	}
	type cand struct {
		sv  StateValue
		num float64
		key string
	}
	var best []cand
	less := func(a, b cand) int { // larger value first, then smaller key
		return cmp.Or(cmp.Compare(b.num, a.num), cmp.Compare(a.key, b.key))
	}
	for p := 0; p < st.n && n > 0; p++ {
		err := v.Scan(st.op.id, p, func(kb, vb []byte) error {
			k, err := st.keys.decode(kb)
			if err != nil {
				return err
			}
			e, err := decodeEntry[S](vb)
			if err != nil {
				return st.stateError(k, "decoding", err)
			}
			c := cand{StateValue{Key: k, Value: e.val, Batch: Time(v.Time), Updated: e.updated}, toFloat(e.val), string(kb)}
			if len(best) == n && less(c, best[n-1]) >= 0 {
				return nil
			}
			i, _ := slices.BinarySearchFunc(best, c, less)
			best = slices.Insert(best, i, c)
			if len(best) > n {
				best = best[:n]
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	out := make([]StateValue, len(best))
	for i, c := range best {
		out[i] = c.sv
	}
	return out, nil
}

func isNumber(t reflect.Type) bool {
	if t == nil {
		return false
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

func toFloat(v any) float64 {
	rv := reflect.ValueOf(v)
	switch {
	case rv.CanInt():
		return float64(rv.Int())
	case rv.CanUint():
		return float64(rv.Uint())
	case rv.CanFloat():
		return rv.Float()
	}
	return 0
}
