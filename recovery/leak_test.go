package recovery

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
)

// TestMain fails the run if a goroutine of raft, Pebble or this package
// outlives the tests: every Log and store a test opens must be closed, and
// Close must wait for everything it started.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines outlived the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines returns the stacks of goroutines running code of raft,
// Pebble or this package. Goroutines that already finished their work but
// not yet exited get scheduler turns first; a blocked one never leaves.
func leakedGoroutines() string {
	var leaked []string
	for range 1000 {
		leaked = leaked[:0]
		buf := make([]byte, 1<<20)
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "leakedGoroutines") {
				continue
			}
			if strings.Contains(g, "hashicorp/raft") || strings.Contains(g, "cockroachdb/pebble") ||
				strings.Contains(g, "sluice/recovery.") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		runtime.Gosched()
	}
	return strings.Join(leaked, "\n\n")
}
