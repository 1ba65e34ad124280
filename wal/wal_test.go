package wal

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

func TestRoundTrip(t *testing.T) {
	big := make([]string, 2000)
	for i := range big {
		big[i] = strings.Repeat("x", 500)
	}
	cases := []struct {
		name  string
		block Block
	}{
		{"one_record", Block{ID: BlockID{"s", "n", 1}, Records: []string{"hello"}}},
		{"no_records", Block{ID: BlockID{"s", "n", 2}}},
		{"empty_record", Block{ID: BlockID{"s", "n", 3}, Records: []string{""}}},
		{"binary_and_utf8", Block{ID: BlockID{"s", "n", 4}, Records: []string{"\x00\xff\xfe", "naïve ☃"}}},
		{"names_with_slashes", Block{ID: BlockID{"a/b", "node:1", 5}, Records: []string{"r"}}},
		{"max_seq", Block{ID: BlockID{"s", "n", 1<<64 - 1}, Records: []string{"r"}}},
		{"one_megabyte", Block{ID: BlockID{"s", "n", 6}, Records: big}},
	}
	l := openLog(t, vfs.NewMem(), "wal", quietLogger())
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mustAppend(t, l, c.block)
			mustRead(t, l, c.block)
		})
	}
}

func TestBlockIDString(t *testing.T) {
	if got := (BlockID{"clicks", "node-2", 42}).String(); got != "clicks/node-2/42" {
		t.Fatalf("String() = %q", got)
	}
}

func TestInvalidIDIsRefused(t *testing.T) {
	cases := []struct {
		name string
		id   BlockID
		want string
	}{
		{"empty_stream", BlockID{"", "n", 1}, "empty stream name"},
		{"empty_node", BlockID{"s", "", 1}, "empty node name"},
		{"nul_in_stream", BlockID{"s\x00t", "n", 1}, "stream name \"s\\x00t\" has a 0x00 byte"},
		{"nul_in_node", BlockID{"s", "\x00", 1}, "node name \"\\x00\" has a 0x00 byte"},
	}
	l := openLog(t, vfs.NewMem(), "wal", quietLogger())
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for op, err := range map[string]error{
				"Append": l.Append(Block{ID: c.id}),
				"Read":   func() error { _, err := l.Read(c.id); return err }(),
				"Delete": l.Delete([]BlockID{c.id}),
			} {
				if !errors.Is(err, ErrInvalidID) || !strings.Contains(err.Error(), c.want) {
					t.Errorf("%s: err = %v, want ErrInvalidID saying %q", op, err, c.want)
				}
			}
		})
	}
	if s := l.Stats(); s.Failed || s.Blocks != 0 {
		t.Fatalf("invalid ids changed the log: %+v", s)
	}
}

func TestAppendIsImmutable(t *testing.T) {
	fs := vfs.NewMem()
	l := openLog(t, fs, "wal", quietLogger())
	b := testBlock("s", "n", 5, 3)
	mustAppend(t, l, b)
	refused := func(t *testing.T, l *Log) {
		other := testBlock("s", "n", 5, 4)
		if err := l.Append(other); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "s/n/5") {
			t.Fatalf("Append(other records) = %v, want ErrExists naming s/n/5", err)
		}
		mustRead(t, l, b)
	}
	t.Run("same_records_is_a_noop", func(t *testing.T) {
		mustAppend(t, l, b)
		if n := l.Stats().Blocks; n != 1 {
			t.Fatalf("Stats().Blocks = %d after a repeated Append, want 1", n)
		}
	})
	t.Run("other_records_are_refused", func(t *testing.T) { refused(t, l) })
	t.Run("lower_seq_is_written", func(t *testing.T) {
		lower := testBlock("s", "n", 3, 1)
		mustAppend(t, l, lower)
		mustRead(t, l, lower)
	})
	t.Run("other_records_are_refused_after_reopen", func(t *testing.T) {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		refused(t, openLog(t, fs, "wal", quietLogger()))
	})
}

func TestConcurrentAppendsAllReadable(t *testing.T) {
	const writers, perWriter = 64, 20
	l := openLog(t, vfs.NewMem(), "wal", quietLogger())
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for seq := range uint64(perWriter) {
				if err := l.Append(testBlock("s", fmt.Sprintf("n%02d", w), seq, 5)); err != nil {
					t.Errorf("Append: %v", err)
				}
			}
		})
	}
	wg.Wait()
	for w := range writers {
		for seq := range uint64(perWriter) {
			mustRead(t, l, testBlock("s", fmt.Sprintf("n%02d", w), seq, 5))
		}
	}
	if n := l.Stats().Blocks; n != writers*perWriter {
		t.Fatalf("Stats().Blocks = %d, want %d", n, writers*perWriter)
	}
}

// TestIterateOrder checks the key order: stream, then node (byte-wise),
// then numeric sequence, whatever the order of the Appends.
func TestIterateOrder(t *testing.T) {
	var want []BlockID
	for _, stream := range []string{"a", "a\x01", "ab", "b"} {
		for _, node := range []string{"n", "n1", "n2"} {
			for _, seq := range []uint64{0, 1, 2, 255, 256, 1 << 40} {
				want = append(want, BlockID{stream, node, seq})
			}
		}
	}
	l := openLog(t, vfs.NewMem(), "wal", quietLogger())
	shuffled := slices.Clone(want)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) {
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	})
	for _, id := range shuffled {
		mustAppend(t, l, Block{ID: id, Records: []string{id.String()}})
	}
	var got []BlockID
	err := l.Iterate(func(b Block) error {
		if b.Records[0] != b.ID.String() {
			t.Errorf("block %s holds %q", b.ID, b.Records[0])
		}
		got = append(got, b.ID)
		return nil
	})
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Iterate: err %v, order\n%v\nwant\n%v", err, got, want)
	}
}

func TestIterateStopsAtCallbackError(t *testing.T) {
	l := openLog(t, vfs.NewMem(), "wal", quietLogger())
	for seq := range uint64(5) {
		mustAppend(t, l, testBlock("s", "n", seq, 1))
	}
	stop := errors.New("stop")
	calls := 0
	err := l.Iterate(func(Block) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if err != stop || calls != 2 {
		t.Fatalf("Iterate = %v after %d calls, want the callback's error after 2", err, calls)
	}
}

func TestDelete(t *testing.T) {
	l := openLog(t, vfs.NewMem(), "wal", quietLogger())
	for seq := range uint64(6) {
		mustAppend(t, l, testBlock("s", "n", seq, 2))
	}
	gone := []BlockID{{"s", "n", 1}, {"s", "n", 3}, {"s", "n", 99}} // 99 was never written
	if err := l.Delete(gone); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for _, id := range gone {
		_, err := l.Read(id)
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), id.String()) {
			t.Errorf("Read(%s) after Delete = %v, want ErrNotFound naming the id", id, err)
		}
	}
	var left []uint64
	if err := l.Iterate(func(b Block) error { left = append(left, b.ID.Seq); return nil }); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(left, []uint64{0, 2, 4, 5}) {
		t.Fatalf("blocks left after Delete: %v", left)
	}
	if err := l.Delete(nil); err != nil {
		t.Fatalf("Delete(nil): %v", err)
	}
	if n := l.Stats().Deleted; n != 3 {
		t.Fatalf("Stats().Deleted = %d, want 3", n)
	}
}

func TestReopenAfterCloseKeepsEverything(t *testing.T) {
	fs := vfs.NewMem()
	l := openLog(t, fs, "data/wal", quietLogger())
	var want []Block
	for seq := range uint64(50) {
		b := testBlock("s", "n", seq, 10)
		mustAppend(t, l, b)
		want = append(want, b)
	}
	if err := l.Delete([]BlockID{want[0].ID}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	l = openLog(t, fs, "data/wal", quietLogger())
	for _, b := range want[1:] {
		mustRead(t, l, b)
	}
	if _, err := l.Read(want[0].ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted block after reopen: %v", err)
	}
	if seq, ok, err := l.LastSeq("s", "n"); err != nil || !ok || seq != 49 {
		t.Fatalf("LastSeq after reopen = %d, %v, %v; want 49", seq, ok, err)
	}
}

func TestLastSeq(t *testing.T) {
	l := openLog(t, vfs.NewMem(), "wal", quietLogger())
	for _, id := range []BlockID{{"s", "n", 7}, {"s", "n", 300}, {"s", "n1", 900}, {"s", "m", 1000}, {"t", "n", 5000}} {
		mustAppend(t, l, Block{ID: id})
	}
	cases := []struct {
		name, stream, node string
		seq                uint64
		ok                 bool
	}{
		{"highest_of_its_node", "s", "n", 300, true},
		{"node_sharing_a_prefix", "s", "n1", 900, true},
		{"absent_node", "s", "o", 0, false},
		{"absent_stream", "r", "n", 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seq, ok, err := l.LastSeq(c.stream, c.node)
			if err != nil || ok != c.ok || seq != c.seq {
				t.Fatalf("LastSeq(%q, %q) = %d, %v, %v; want %d, %v", c.stream, c.node, seq, ok, err, c.seq, c.ok)
			}
		})
	}
}

// LastSeq counts deleted blocks too, across a reopen and after a crash
// that keeps only what was synced: a node whose newest blocks were all
// truncated must not number a new block with a used sequence (the
// metadata log refuses a block added twice, and the producers of the new
// one would be told their requests were rejected).
func TestLastSeqCountsDeletedBlocks(t *testing.T) {
	fs := vfs.NewCrashableMem()
	l := openLog(t, fs, "wal", quietLogger())
	for seq := uint64(1); seq <= 5; seq++ {
		mustAppend(t, l, testBlock("s", "n", seq, 1))
	}
	mustAppend(t, l, testBlock("s", "m", 9, 1))
	if err := l.Delete([]BlockID{{"s", "n", 3}, {"s", "n", 5}, {"s", "n", 4}}); err != nil {
		t.Fatal(err)
	}
	if err := l.Delete([]BlockID{{"s", "m", 9}}); err != nil {
		t.Fatal(err)
	}
	check := func(when string, l *Log, blocks int) {
		t.Helper()
		for _, c := range []struct {
			node string
			seq  uint64
		}{{"n", 5}, {"m", 9}} {
			if seq, ok, err := l.LastSeq("s", c.node); err != nil || !ok || seq != c.seq {
				t.Fatalf("%s: LastSeq(s, %s) = %d, %v, %v; want %d: deleted blocks count", when, c.node, seq, ok, err, c.seq)
			}
		}
		if _, ok, err := l.LastSeq("s", "o"); err != nil || ok {
			t.Fatalf("%s: LastSeq of a node never stored: %v, %v", when, ok, err)
		}
		var n int
		if err := l.Iterate(func(b Block) error {
			if b.ID.Stream == "s" {
				n++
			}
			return nil
		}); err != nil || n != blocks {
			t.Fatalf("%s: Iterate saw %d blocks of s, %v; want %d (the marks are not blocks)", when, n, err, blocks)
		}
	}
	check("open", l, 2)
	if err := l.Delete([]BlockID{{"s", "n", 1}}); err != nil { // a lower one: the mark stays
		t.Fatal(err)
	}
	check("after a lower delete", l, 1)
	mustAppend(t, l, testBlock("t", "n", 1, 1)) // synced, and the deletes before it with it
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, crashed, "wal", quietLogger())
	if _, err := l.Read(BlockID{"s", "n", 5}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("block s/n/5 after the crash: %v, want it deleted", err)
	}
	check("after a crash", l, 1)
}

func TestCallsAfterCloseReturnErrClosed(t *testing.T) {
	l := openLog(t, vfs.NewMem(), "wal", quietLogger())
	mustAppend(t, l, testBlock("s", "n", 1, 1))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	_, readErr := l.Read(BlockID{"s", "n", 1})
	_, _, seqErr := l.LastSeq("s", "n")
	for name, err := range map[string]error{
		"Append":  l.Append(testBlock("s", "n", 2, 1)),
		"Read":    readErr,
		"Iterate": l.Iterate(func(Block) error { return nil }),
		"Delete":  l.Delete([]BlockID{{"s", "n", 1}}),
		"LastSeq": seqErr,
		"Close":   l.Close(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}
