package engine

import (
	"fmt"
	"time"
)

// Time is a batch time: milliseconds since the Unix epoch, as in Spark
// Streaming. A batch is identified by its time, which is zero time plus a
// whole number of batch durations. Batch times are fixed when a batch is
// allocated and never re-read from a clock.
type Time int64

// TimeOf converts a wall-clock instant to a Time, truncating to the
// millisecond.
func TimeOf(t time.Time) Time { return Time(t.UnixMilli()) }

// Add returns t+d, truncated to the millisecond.
func (t Time) Add(d time.Duration) Time { return t + Time(d.Milliseconds()) }

// Sub returns the duration t-u.
func (t Time) Sub(u Time) time.Duration { return time.Duration(t-u) * time.Millisecond }

// Std returns t as a time.Time.
func (t Time) Std() time.Time { return time.UnixMilli(int64(t)) }

// String formats t as Spark does: "1000 ms".
func (t Time) String() string { return fmt.Sprintf("%d ms", int64(t)) }

// floorTo returns the largest time zero+k*d that is <= t.
func (t Time) floorTo(zero Time, d time.Duration) Time {
	step := Time(d.Milliseconds())
	off := t - zero
	k := off / step
	if off < 0 && off%step != 0 {
		k--
	}
	return zero + k*step
}

// isMultiple reports whether a is a whole, positive multiple of b.
func isMultiple(a, b time.Duration) bool {
	return b > 0 && a > 0 && a%b == 0
}
