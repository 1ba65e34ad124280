package engine

import "sync"

// sourceStats is the counters and last error of an input source, shared
// by the source's goroutines and read by status pages.
type sourceStats struct {
	c  *Context
	mu sync.Mutex
	ri ReceiverInfo
}

func (s *sourceStats) init(c *Context, stream string, op int) {
	s.c = c
	s.ri = ReceiverInfo{Stream: stream, Operator: op}
}

func (s *sourceStats) update(fn func(*ReceiverInfo)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(&s.ri)
}

func (s *sourceStats) info() ReceiverInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ri
}

func (s *sourceStats) setRunning(v bool) { s.update(func(ri *ReceiverInfo) { ri.Running = v }) }

// reportError counts and logs a source's error and tells listeners.
func (s *sourceStats) reportError(err error) {
	var stream string
	s.update(func(ri *ReceiverInfo) {
		ri.Errors++
		ri.LastError = err.Error()
		stream = ri.Stream
	})
	s.c.log.Warn("input source", "stream", stream, "err", err)
	s.c.bus.post(func(l Listener) {
		if rl, ok := l.(ReceiverListener); ok {
			rl.OnReceiverError(stream, err)
		}
	})
}
