package state

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
)

// exportOf runs the writes of ws on a batch of s at t, or, with scratch
// set, on a scratch batch of s whose Writes are then Put into the batch:
// the delta WriteDelta writes, and what the part's Scan yields.
func exportOf(t *testing.T, s *Store, bt int64, scratch bool, ws ...write) ([]byte, []kv) {
	t.Helper()
	var sc *Batch
	if scratch {
		var err error
		if sc, err = s.Scratch(bt); err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		writeAll(t, sc, ws...)
	}
	b, err := s.Begin(bt)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Abort()
	if scratch {
		done := map[partID]bool{}
		for _, w := range ws {
			if id := (partID{w.op, w.part}); !done[id] {
				done[id] = true
				for _, x := range sc.Part(w.op, w.part).Writes() {
					b.Part(w.op, w.part).Put(x)
				}
			}
		}
	} else {
		writeAll(t, b, ws...)
	}
	if err := b.WriteDelta(); err != nil {
		t.Fatal(err)
	}
	data, err := b.Export()
	if err != nil {
		t.Fatal(err)
	}
	return data, collect(t, b.Part(opA, 0).Scan)
}

// A partition's writes computed on a scratch batch and Put into the batch
// give the delta (and the Scan) that writing the batch directly gives:
// sets and deletes of committed keys, new keys, a new key set then
// deleted, a key only read.
func TestScratchWritesPutGiveTheSameDelta(t *testing.T) {
	s := openMem(t)
	commit(t, s, 10, set(opA, 0, "a", "1"), set(opA, 0, "b", "1"), set(opA, 0, "c", "1"))
	ws := []write{set(opA, 0, "b", "2"), set(opA, 0, "z", "new"), del(opA, 0, "c"), set(opA, 0, "m", "x"),
		del(opA, 0, "m"), set(opA, 0, "y", "new2"), set(opA, 0, "b", "3")}
	direct, scanDirect := exportOf(t, s, 20, false, ws...)
	viaScratch, scanScratch := exportOf(t, s, 20, true, ws...)
	if !bytes.Equal(direct, viaScratch) {
		t.Fatalf("delta written directly %x, through a scratch batch %x", direct, viaScratch)
	}
	if !slices.Equal(scanDirect, scanScratch) {
		t.Fatalf("scan written directly %v, through a scratch batch %v", scanDirect, scanScratch)
	}
	want := []kv{{"a", "1"}, {"b", "3"}, {"z", "new"}, {"y", "new2"}}
	if !slices.Equal(scanScratch, want) {
		t.Fatalf("scan %v, want %v", scanScratch, want)
	}
}

// A scratch batch is not the open batch: Begin's batch still writes and
// applies while one is open, and the scratch batch itself is never
// written, applied, or over an applied batch.
func TestScratchIsNeverWritten(t *testing.T) {
	s := openMem(t)
	commit(t, s, 10, set(opA, 0, "a", "1"))
	b, err := s.Begin(20)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := s.Scratch(20)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if sc.Base() != 10 {
		t.Fatalf("scratch base %d, want 10", sc.Base())
	}
	writeAll(t, sc, set(opA, 0, "a", "scratch"))
	wantErr(t, "WriteDelta of a scratch batch", sc.WriteDelta(), ErrBatch)
	wantErr(t, "Apply of a scratch batch", sc.Apply(), ErrBatch)
	if _, err := sc.Export(); !errors.Is(err, ErrBatch) {
		t.Fatalf("Export of a scratch batch: %v", err)
	}
	writeAll(t, b, set(opA, 0, "a", "2"))
	if err := b.WriteDelta(); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(); err != nil {
		t.Fatal(err)
	}
	checkCommitted(t, s, opA, 0, map[string]string{"a": "2"})
	if _, err := s.Scratch(20); !errors.Is(err, ErrBatch) {
		t.Fatalf("scratch batch at an applied batch: %v, want ErrBatch", err)
	}
	// The open scratch still reads batch 10, plus its own write.
	if got := collect(t, sc.Part(opA, 0).Scan); !slices.Equal(got, []kv{{"a", "scratch"}}) {
		t.Fatalf("scratch scan %v", got)
	}
	sc2, _ := s.Scratch(30)
	defer sc2.Close()
	if got, _, _ := sc2.Part(opA, 0).Get([]byte("a")); string(got) != "2" {
		t.Fatalf("a scratch batch after 20 reads %q", got)
	}
}

// A replica applies deltas while scratch batches read it: each scratch
// batch reads the state of its Base throughout, and neither waits for
// the other.
func TestScratchReadsItsBaseWhileADeltaApplies(t *testing.T) {
	primary, replica := openMem(t), openMem(t)
	const keys = 200
	var ws []write
	for k := range keys {
		ws = append(ws, set(opA, 0, fmt.Sprintf("k%03d", k), "10"))
	}
	if err := ship(t, primary, replica, 10, 0, true, ws...); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var errs []error
	var mu sync.Mutex
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := scratchConsistent(replica, int64(1000+r*100000+i), keys); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	for bt := int64(20); bt <= 200; bt += 10 {
		var ws []write
		for k := range keys {
			ws = append(ws, set(opA, 0, fmt.Sprintf("k%03d", k), fmt.Sprint(bt)))
		}
		if err := ship(t, primary, replica, bt, bt-10, true, ws...); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	checkCommitted(t, replica, opA, 0, committed(t, primary, opA, 0))
}

// scratchConsistent checks that a scratch batch reads one batch's state:
// every key at the value its Base wrote, by Scan and by Get.
func scratchConsistent(s *Store, bt int64, keys int) error {
	sc, err := s.Scratch(bt)
	if err != nil {
		return err
	}
	defer sc.Close()
	want := fmt.Sprint(sc.Base())
	p := sc.Part(opA, 0)
	n := 0
	err = p.Scan(func(k, v []byte) error {
		n++
		if string(v) != want {
			return fmt.Errorf("scratch over batch %s: key %s = %s", want, k, v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n != keys {
		return fmt.Errorf("scratch over batch %s: %d keys, want %d", want, n, keys)
	}
	if v, _, err := sc.Part(opA, 0).Get([]byte("k199")); err != nil || string(v) != want {
		return fmt.Errorf("scratch over batch %s: Get = %s, %v", want, v, err)
	}
	return nil
}

// Closing the store releases the scratch batches still open: Close does
// not report leaked snapshots, their reads fail with ErrClosed, and
// closing them after is harmless.
func TestStoreCloseReleasesScratches(t *testing.T) {
	s := openMem(t)
	commit(t, s, 10, set(opA, 0, "a", "1"))
	sc, err := s.Scratch(20)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close with a scratch batch open: %v", err)
	}
	if _, _, err := sc.Part(opA, 1).Get([]byte("a")); !errors.Is(err, ErrClosed) {
		t.Fatalf("scratch read after Close: %v, want ErrClosed", err)
	}
	sc.Close()
	if _, err := s.Scratch(30); !errors.Is(err, ErrClosed) {
		t.Fatalf("Scratch after Close: %v, want ErrClosed", err)
	}
}

// A batch's Scratch reads what the batch reads: for a batch Begin made,
// the committed state; for a scratch batch, its snapshot, also after the
// store has moved on, and closing it leaves the outer one open.
func TestBatchScratchReadsWhatTheBatchReads(t *testing.T) {
	s := openMem(t)
	commit(t, s, 10, set(opA, 0, "a", "1"))
	outer, err := s.Scratch(20)
	if err != nil {
		t.Fatal(err)
	}
	defer outer.Close()
	commit(t, s, 20, set(opA, 0, "a", "2"))
	inner, err := outer.Scratch()
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := inner.Part(opA, 0).Get([]byte("a")); err != nil || string(got) != "1" || inner.Base() != 10 {
		t.Fatalf("inner scratch reads %q, %v as of %d; want 1 as of 10", got, err, inner.Base())
	}
	inner.Close()
	if got, _, err := outer.Part(opA, 0).Get([]byte("a")); err != nil || string(got) != "1" {
		t.Fatalf("outer scratch after the inner one closed reads %q, %v", got, err)
	}
	b, err := s.Begin(30)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Abort()
	sb, err := b.Scratch()
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	if got, _, err := sb.Part(opA, 0).Get([]byte("a")); err != nil || string(got) != "2" || sb.Base() != 20 || sb.Time() != 30 {
		t.Fatalf("scratch of batch 30 reads %q, %v as of %d at %d", got, err, sb.Base(), sb.Time())
	}
}
