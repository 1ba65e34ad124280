package checkpoint

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run if goroutines outlive the tests: every Pebble DB a
// test opens must be closed.
func TestMain(m *testing.M) {
	before := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		if leaked := waitForGoroutines(before); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines leaked by the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// waitForGoroutines spins until at most n goroutines run, and returns a
// dump of them if they do not wind down in time.
func waitForGoroutines(n int) string {
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			return strings.TrimSpace(string(buf[:runtime.Stack(buf, true)]))
		}
		runtime.Gosched()
	}
	return ""
}
