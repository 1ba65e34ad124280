package recovery

import (
	"context"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"
)

// testConfig is a Config in dir with the default timeouts.
func testConfig(dir string) Config {
	return Config{Dir: dir, NodeID: "node-1", Logger: discardLogger()}
}

func openLog(t testing.TB, cfg Config) *Log {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func closeLog(t testing.TB, l *Log) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// applyLog applies evs through l and checks each result against the pure
// state machine: same outcomes, same errors.
func applyLog(t testing.TB, l *Log, model *state, evs []Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, ev := range evs {
		want, wantErr := model.apply(ev)
		got, err := l.Apply(ctx, ev)
		if (err == nil) != (wantErr == nil) || !reflect.DeepEqual(got, want) {
			t.Fatalf("apply %#v: got %+v, %v; want %+v, %v", ev, got, err, want, wantErr)
		}
	}
}

func sameView(t testing.TB, got, want View) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("view differs:\n got %+v\nwant %+v", got, want)
	}
}

func TestOpenBecomesLeader(t *testing.T) {
	l := openLog(t, testConfig(t.TempDir()))
	st := l.Stats()
	// raft sets its applied index on its main goroutine after the FSM
	// goroutine has answered Open's barrier, so it may lag a moment.
	for deadline := time.Now().Add(10 * time.Second); st.AppliedIndex < 1 && time.Now().Before(deadline); st = l.Stats() {
		time.Sleep(time.Millisecond)
	}
	if st.State != "Leader" || st.Term < 1 || st.AppliedIndex < 1 {
		t.Fatalf("stats %+v", st)
	}
}

// The state is rebuilt on reopen from the log alone (no snapshot yet).
func TestReopenReplaysTheLog(t *testing.T) {
	dir := t.TempDir()
	evs := randomLog(11, 120)
	model := newState()
	l := openLog(t, testConfig(dir))
	applyLog(t, l, model, evs[:80])
	before := l.View()
	sameView(t, before, model.view())
	lastIndex := l.Stats().LastIndex
	closeLog(t, l)

	l = openLog(t, testConfig(dir))
	sameView(t, l.View(), before)
	if st := l.Stats(); st.LastIndex <= lastIndex || st.LastSnapshotIndex != 0 {
		t.Fatalf("stats after reopen %+v (last index before %d)", st, lastIndex)
	}
	applyLog(t, l, model, evs[80:])
	sameView(t, l.View(), model.view())
}

// A low SnapshotThreshold makes raft snapshot and compact the log by
// itself; reopening restores the snapshot and replays the log after it.
func TestSnapshotThresholdCompactsTheLog(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	cfg.SnapshotThreshold, cfg.SnapshotInterval, cfg.TrailingLogs = 16, 5*time.Millisecond, 4
	evs := randomLog(12, 300)
	model := newState()
	l := openLog(t, cfg)
	applyLog(t, l, model, evs[:200])
	waitPersisted(t, l)
	applyLog(t, l, model, evs[200:250])
	before := l.View()
	closeLog(t, l)

	l = openLog(t, cfg)
	sameView(t, l.View(), before)
	st := l.Stats()
	if st.LastSnapshotIndex == 0 || st.FirstIndex <= 1 {
		t.Fatalf("no snapshot restored or log not compacted: %+v", st)
	}
	applyLog(t, l, model, evs[250:])
	sameView(t, l.View(), model.view())
}

// waitPersisted waits until raft has persisted a snapshot of l's FSM.
func waitPersisted(t testing.TB, l *Log) {
	t.Helper()
	select {
	case <-l.fsm.persisted:
	case <-time.After(10 * time.Second):
		t.Fatalf("no snapshot taken: %+v", l.Stats())
	}
}

func TestApplyErrors(t *testing.T) {
	l := openLog(t, testConfig(t.TempDir()))
	ctx := context.Background()
	if _, err := l.Apply(ctx, BatchAllocated{Time: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Apply(ctx, BatchAllocated{Time: 5}); !errors.Is(err, ErrBatchOrder) {
		t.Fatalf("older batch: %v", err)
	}
	if _, err := l.Apply(ctx, nil); !errors.Is(err, ErrInvalidEvent) {
		t.Fatalf("nil event: %v", err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := l.Apply(done, BatchAllocated{Time: 20}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
	expired, cancel2 := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel2()
	if _, err := l.Apply(expired, BatchAllocated{Time: 20}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("expired ctx: %v", err)
	}
	closeLog(t, l)
	if _, err := l.Apply(ctx, BatchAllocated{Time: 20}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if st := l.Stats(); st.State != "Shutdown" {
		t.Fatalf("stats after close: %+v", st)
	}
}

// Concurrent appliers, readers and a Close: every Apply returns (a result
// or ErrClosed), Views stay consistent, nothing hangs.
func TestConcurrentApplyViewClose(t *testing.T) {
	l := openLog(t, testConfig(t.TempDir()))
	ctx := context.Background()
	errc := make(chan error, 8)
	for w := range 4 {
		go func() {
			for i := uint64(0); ; i++ {
				_, err := l.Apply(ctx, BlockAdded{Block: BlockRef{"s", "n", uint64(w)<<32 | i}, Records: 1})
				if err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	for range 2 {
		go func() {
			for {
				v := l.View()
				for i := 1; i < len(v.Batches); i++ {
					if v.Batches[i].Time <= v.Batches[i-1].Time {
						errc <- errors.New("view out of order")
						return
					}
				}
				if l.Stats().State == "Shutdown" {
					errc <- ErrClosed
					return
				}
			}
		}()
	}
	for i := int64(1); i <= 20; i++ {
		if _, err := l.Apply(ctx, BatchAllocated{Time: i}); err != nil {
			t.Fatal(err)
		}
	}
	closeLog(t, l)
	for range 6 {
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Fatalf("worker: %v", err)
		}
	}
}

// Open never bootstraps over stored state, and a data dir of another node
// is refused at once instead of waiting for a leadership that cannot come.
func TestOpenOtherNodesDir(t *testing.T) {
	dir := t.TempDir()
	closeLog(t, openLog(t, testConfig(dir)))
	cfg := testConfig(dir)
	cfg.NodeID = "node-2"
	_, err := Open(context.Background(), cfg)
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("other node's dir: %v", err)
	}
	closeLog(t, openLog(t, testConfig(dir))) // and the dir still opens
}

func TestOpenContextEnds(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Open(ctx, testConfig(dir)); !errors.Is(err, context.Canceled) {
		t.Fatalf("open with a done ctx: %v", err)
	}
	closeLog(t, openLog(t, testConfig(dir))) // nothing was left open
}

func TestConfigValidate(t *testing.T) {
	cases := map[string]func(*Config){
		"Dir":              func(c *Config) { c.Dir = "" },
		"NodeID":           func(c *Config) { c.NodeID = "" },
		"HeartbeatTimeout": func(c *Config) { c.HeartbeatTimeout = time.Millisecond },
		"ElectionTimeout":  func(c *Config) { c.ElectionTimeout = c.HeartbeatTimeout / 2 },
	}
	for field, edit := range cases {
		cfg := testConfig("d").withDefaults()
		edit(&cfg)
		err := cfg.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v", field, err)
		}
	}
	if err := testConfig("d").withDefaults().Validate(); err != nil {
		t.Fatal(err)
	}
}

// The in-memory version: Pebble on vfs.NewMem and raft's in-memory
// snapshot store; nothing touches the disk, and a reopen on the same
// filesystem and store gives back the state.
func TestInMemory(t *testing.T) {
	cfg := testConfig("in-memory-dir")
	cfg.FS, cfg.Snapshots = vfs.NewMem(), raft.NewInmemSnapshotStore()
	model := newState()
	evs := randomLog(13, 100)
	l := openLog(t, cfg)
	applyLog(t, l, model, evs[:50])
	if err := l.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	applyLog(t, l, model, evs[50:])
	closeLog(t, l)
	l = openLog(t, cfg)
	sameView(t, l.View(), model.view())
	if st := l.Stats(); st.LastSnapshotIndex == 0 {
		t.Fatalf("snapshot not restored: %+v", st)
	}
	if _, err := os.Stat(cfg.Dir); !os.IsNotExist(err) {
		t.Fatalf("the in-memory log touched the disk: %v", err)
	}
}

// A crash (Pebble's crashable filesystem keeps only what was synced) loses
// no event whose Apply returned: each was synced before it was applied.
func TestCrashKeepsAcknowledgedEvents(t *testing.T) {
	fs := vfs.NewCrashableMem()
	cfg := testConfig("crash")
	cfg.FS, cfg.Snapshots = fs, raft.NewInmemSnapshotStore()
	model := newState()
	l := openLog(t, cfg)
	applyLog(t, l, model, randomLog(14, 80))
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	closeLog(t, l)

	cfg.FS = crashed
	l = openLog(t, cfg)
	sameView(t, l.View(), model.view())
}
