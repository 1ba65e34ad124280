package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-stream/sluice/engine"
)

// TestCrashDirSource kills a node reading a directory (--source dir://) at
// a failpoint — after a file's block is registered and before its batch
// ran, or with the batch's outputs written and BatchCompleted not
// committed — moves one more file in while it is down, restarts it on the
// same data directory, and checks that the archive holds every line of
// every file exactly once: the restart finds the stored files in the
// metadata log and never stores them again.
func TestCrashDirSource(t *testing.T) {
	for _, failpoint := range []string{engine.FailAfterBlockAdded + "@2", engine.FailBeforeBatchCompleted} {
		name, _, _ := strings.Cut(failpoint, "@")
		t.Run(name, func(t *testing.T) { crashDirSource(t, failpoint) })
	}
}

func crashDirSource(t *testing.T, failpoint string) {
	in, data := t.TempDir(), t.TempDir()
	want := make(map[string]bool)
	addFile := func(name string, n int) {
		var b strings.Builder
		for i := range n {
			line := fmt.Sprintf("%s-%03d", name, i)
			want[line] = true
			fmt.Fprintln(&b, line)
		}
		tmp := filepath.Join(in, "."+name)
		if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(in, name+".txt")); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"a", "b", "c"} {
		addFile(f, 50)
	}
	start := func(failpoint string) *crashNode {
		return &crashNode{child: startChildEnv(t, failpointEnv(failpoint), "run", "--app", "archive", "--source", "dir://"+in,
			"--data-dir", data, "--http", "127.0.0.1:0", "--batch", "100ms")}
	}

	n := start(failpoint)
	fp, _, _ := strings.Cut(failpoint, "@")
	n.waitKilled(t, fp)
	addFile("d", 50) // moved in while no node runs

	n2 := start("")
	deadline := time.Now().Add(drainDeadline)
	for {
		ar, err := scanArchive(data)
		if err != nil {
			t.Fatal(err)
		}
		missing := 0
		for line := range want {
			if len(ar.where[line]) == 0 {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d lines not archived within %v; output:\n%s", missing, len(want), drainDeadline, n2.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	n2.stopGracefully(t)
	ar, err := scanArchive(data)
	if err != nil {
		t.Fatal(err)
	}
	for line, dirs := range ar.where {
		switch {
		case !want[line]:
			t.Errorf("archived %q, which no file holds", line)
		case len(dirs) != 1:
			t.Errorf("line %q archived %d times, in %v; want once", line, len(dirs), dirs)
		}
	}
	if len(ar.unfinished) > 0 {
		t.Errorf("batch directories without _SUCCESS after a graceful stop: %v", ar.unfinished)
	}
}
