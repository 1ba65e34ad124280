package state

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestVisibility checks that a batch's writes are seen by its own Part.Get
// and Part.Scan at once, by the store's readers (Store.Get, Store.Scan, a
// new View) only after Apply, and never by a View opened before Apply.
func TestVisibility(t *testing.T) {
	s := openMem(t)
	commit(t, s, 1, set(opA, 0, "keep", "1"), set(opA, 0, "gone", "1"), set(opA, 0, "upd", "1"))
	before := map[string]string{"keep": "1", "gone": "1", "upd": "1"}
	after := map[string]string{"keep": "1", "upd": "2", "new": "2"}
	probe := []string{"keep", "gone", "upd", "new"}

	oldView, err := s.View()
	if err != nil {
		t.Fatal(err)
	}
	defer oldView.Close()
	b, err := s.Begin(2)
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, b, set(opA, 0, "upd", "2"), del(opA, 0, "gone"), set(opA, 0, "new", "2"))
	p := b.Part(opA, 0)

	byGet := func(get func(k []byte) ([]byte, bool, error)) map[string]string {
		m := make(map[string]string)
		for _, k := range probe {
			v, ok, err := get([]byte(k))
			if err != nil {
				t.Fatalf("Get(%q): %v", k, err)
			}
			if ok {
				m[k] = string(v)
			}
		}
		return m
	}
	byScan := func(scan func(fn func(k, v []byte) error) error) map[string]string {
		m := make(map[string]string)
		for _, x := range collect(t, scan) {
			if _, dup := m[x.key]; dup {
				t.Fatalf("Scan yielded %q twice", x.key)
			}
			m[x.key] = x.val
		}
		return m
	}
	freshView := func(read func(v *View) map[string]string) map[string]string {
		v, err := s.View()
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		return read(v)
	}
	type reader struct {
		name     string
		read     func() map[string]string
		seesOpen bool // sees the open batch's writes before Apply
		isPart   bool // a Part: not to be used after WriteDelta
		isOld    bool // a View opened before the batch: never sees it
	}
	readers := []reader{
		{name: "Part.Get", seesOpen: true, isPart: true, read: func() map[string]string { return byGet(p.Get) }},
		{name: "Part.Scan", seesOpen: true, isPart: true, read: func() map[string]string { return byScan(p.Scan) }},
		{name: "Store.Get", read: func() map[string]string {
			return byGet(func(k []byte) ([]byte, bool, error) { return s.Get(opA, 0, k) })
		}},
		{name: "Store.Scan", read: func() map[string]string {
			return byScan(func(fn func(k, v []byte) error) error { return s.Scan(opA, 0, fn) })
		}},
		{name: "new View.Get", read: func() map[string]string {
			return freshView(func(v *View) map[string]string {
				return byGet(func(k []byte) ([]byte, bool, error) { return v.Get(opA, 0, k) })
			})
		}},
		{name: "new View.Scan", read: func() map[string]string {
			return freshView(func(v *View) map[string]string {
				return byScan(func(fn func(k, v []byte) error) error { return v.Scan(opA, 0, fn) })
			})
		}},
		{name: "old View.Get", isOld: true, read: func() map[string]string {
			return byGet(func(k []byte) ([]byte, bool, error) { return oldView.Get(opA, 0, k) })
		}},
		{name: "old View.Scan", isOld: true, read: func() map[string]string {
			return byScan(func(fn func(k, v []byte) error) error { return oldView.Scan(opA, 0, fn) })
		}},
	}
	check := func(stage string, applied bool) {
		t.Helper()
		for _, r := range readers {
			if r.isPart && stage != "written" {
				continue
			}
			want := before
			if !r.isOld && (r.seesOpen || applied) {
				want = after
			}
			if got := r.read(); !maps.Equal(got, want) {
				t.Errorf("%s, %s: got %v, want %v", stage, r.name, sortedKVs(got), sortedKVs(want))
			}
		}
	}
	check("written", false)
	if err := b.WriteDelta(); err != nil {
		t.Fatal(err)
	}
	check("delta written", false)
	if err := b.Apply(); err != nil {
		t.Fatal(err)
	}
	check("applied", true)
	if oldView.Time != 1 {
		t.Errorf("old View.Time = %d, want 1", oldView.Time)
	}
	v, err := s.View()
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if v.Time != 2 {
		t.Errorf("new View.Time = %d, want 2", v.Time)
	}
}

// TestPartScanOrder checks the order Part.Scan yields keys in: the
// committed keys in byte order with the batch's writes applied (deleted
// keys skipped), then the keys the batch added, in the order they were
// added.
func TestPartScanOrder(t *testing.T) {
	// Committed in an order that is not byte order, with keys that sort
	// differently as bytes than by length.
	base := []write{
		set(opA, 0, "\xff", "c"), set(opA, 0, "b", "c"), set(opA, 0, "ab", "c"),
		set(opA, 0, "a", "c"), set(opA, 0, "\x00", "c"),
	}
	cases := []struct {
		name   string
		writes []write
		want   []kv
	}{
		{
			name: "no writes: committed keys in byte order",
			want: []kv{{"\x00", "c"}, {"a", "c"}, {"ab", "c"}, {"b", "c"}, {"\xff", "c"}},
		},
		{
			name:   "updates keep their place, deletes are skipped",
			writes: []write{set(opA, 0, "b", "u"), del(opA, 0, "a"), del(opA, 0, "\xff"), set(opA, 0, "\x00", "u")},
			want:   []kv{{"\x00", "u"}, {"ab", "c"}, {"b", "u"}},
		},
		{
			name:   "added keys follow, in insertion order",
			writes: []write{set(opA, 0, "z", "n"), set(opA, 0, "0", "n"), set(opA, 0, "aa", "n"), set(opA, 0, "ab", "u")},
			want:   []kv{{"\x00", "c"}, {"a", "c"}, {"ab", "u"}, {"b", "c"}, {"\xff", "c"}, {"z", "n"}, {"0", "n"}, {"aa", "n"}},
		},
		{
			name:   "an added key deleted again is not yielded",
			writes: []write{set(opA, 0, "m", "n"), set(opA, 0, "n", "n"), del(opA, 0, "m")},
			want:   []kv{{"\x00", "c"}, {"a", "c"}, {"ab", "c"}, {"b", "c"}, {"\xff", "c"}, {"n", "n"}},
		},
		{
			name:   "a deleted committed key set again keeps its place",
			writes: []write{del(opA, 0, "ab"), set(opA, 0, "q", "n"), set(opA, 0, "ab", "again")},
			want:   []kv{{"\x00", "c"}, {"a", "c"}, {"ab", "again"}, {"b", "c"}, {"\xff", "c"}, {"q", "n"}},
		},
		{
			name:   "writes to another partition are not seen",
			writes: []write{set(opA, 1, "a", "other"), set(opA, 1, "x", "other"), set(opB, 0, "y", "other")},
			want:   []kv{{"\x00", "c"}, {"a", "c"}, {"ab", "c"}, {"b", "c"}, {"\xff", "c"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := openMem(t)
			commit(t, s, 1, base...)
			b, err := s.Begin(2)
			if err != nil {
				t.Fatal(err)
			}
			writeAll(t, b, tc.writes...)
			got := collect(t, b.Part(opA, 0).Scan)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("Part.Scan:\n got  %v\n want %v", got, tc.want)
			}
			// Once applied, the store yields the same keys in byte order.
			if err := b.WriteDelta(); err != nil {
				t.Fatal(err)
			}
			if err := b.Apply(); err != nil {
				t.Fatal(err)
			}
			sorted := slices.SortedFunc(slices.Values(tc.want), func(x, y kv) int { return cmpString(x.key, y.key) })
			if got := collect(t, func(fn func(k, v []byte) error) error { return s.Scan(opA, 0, fn) }); !slices.Equal(got, sorted) {
				t.Fatalf("Store.Scan after Apply:\n got  %v\n want %v", got, sorted)
			}
		})
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestPartScanSetDuringScan checks that a key Set from inside Scan's
// callback is not yielded by that Scan (it would otherwise loop over its
// own additions), while an update of a committed key not yet reached and
// a delete of one are seen; and that a later Scan yields the new keys.
func TestPartScanSetDuringScan(t *testing.T) {
	s := openMem(t)
	commit(t, s, 1, set(opA, 0, "a", "1"), set(opA, 0, "b", "1"), set(opA, 0, "c", "1"))
	b, err := s.Begin(2)
	if err != nil {
		t.Fatal(err)
	}
	p := b.Part(opA, 0)
	p.Set([]byte("x"), []byte("added before"), false)
	var got []kv
	err = p.Scan(func(k, v []byte) error {
		got = append(got, kv{string(k), string(v)})
		if string(k) == "a" {
			p.Set([]byte("new1"), []byte("during"), false)
			p.Set([]byte("c"), []byte("updated during"), true)
			p.Delete([]byte("b"), true)
			p.Set([]byte("new2"), []byte("during"), false)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []kv{{"a", "1"}, {"c", "updated during"}, {"x", "added before"}}
	if !slices.Equal(got, want) {
		t.Fatalf("Scan with Sets in its callback:\n got  %v\n want %v", got, want)
	}
	want = []kv{{"a", "1"}, {"c", "updated during"}, {"x", "added before"}, {"new1", "during"}, {"new2", "during"}}
	if got := collect(t, p.Scan); !slices.Equal(got, want) {
		t.Fatalf("second Scan:\n got  %v\n want %v", got, want)
	}
}

// TestPartScanStopsOnError checks that an error from Scan's callback ends
// the Scan and is returned as is, in either of its two passes.
func TestPartScanStopsOnError(t *testing.T) {
	s := openMem(t)
	commit(t, s, 1, set(opA, 0, "a", "1"), set(opA, 0, "b", "1"))
	b, err := s.Begin(2)
	if err != nil {
		t.Fatal(err)
	}
	p := b.Part(opA, 0)
	p.Set([]byte("x"), []byte("n"), false)
	p.Set([]byte("y"), []byte("n"), false)
	for _, stopAt := range []string{"a", "x"} {
		stop := fmt.Errorf("stop at %s", stopAt)
		var seen []string
		err := p.Scan(func(k, v []byte) error {
			seen = append(seen, string(k))
			if string(k) == stopAt {
				return stop
			}
			return nil
		})
		if err != stop || seen[len(seen)-1] != stopAt {
			t.Errorf("stop at %s: Scan returned %v after %v", stopAt, err, seen)
		}
	}
}

// TestRerunReplacesDelta checks that a batch re-run (its first run wrote
// its delta, then failed before the metadata log said it completed)
// replaces the first run's writes: after the second run's Apply only its
// writes are visible, nothing of the first run is left, on the running
// store and on the disk as a crash right before Apply leaves it.
func TestRerunReplacesDelta(t *testing.T) {
	first := []write{set(opA, 0, "a", "run1"), set(opA, 0, "onlyFirst", "run1"), del(opA, 0, "b"), set(opA, 1, "p1", "run1")}
	second := []write{set(opA, 0, "a", "run2"), set(opA, 0, "second", "run2")}
	want := map[string]string{"a": "run2", "b": "1", "second": "run2"}
	cases := []struct {
		name string
		stop func(b *Batch) // how the first run ends
	}{
		{name: "first run dropped by a new Begin", stop: func(*Batch) {}},
		{name: "first run aborted", stop: func(b *Batch) { b.Abort() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := vfs.NewCrashableMem()
			s := openFS(t, fs)
			commit(t, s, 1, set(opA, 0, "a", "1"), set(opA, 0, "b", "1"))
			run1, err := s.Begin(2)
			if err != nil {
				t.Fatal(err)
			}
			writeAll(t, run1, first...)
			run1.SetSlice(opB, 0, []byte("run1"))
			run1.SetOpMeta(opA, "m", []byte("run1"))
			if err := run1.WriteDelta(); err != nil {
				t.Fatal(err)
			}
			tc.stop(run1)
			run2, err := s.Begin(2)
			if err != nil {
				t.Fatal(err)
			}
			writeAll(t, run2, second...)
			if err := run2.WriteDelta(); err != nil {
				t.Fatal(err)
			}
			crashed := fs.CrashClone(vfs.CrashCloneCfg{})
			if err := run2.Apply(); err != nil {
				t.Fatal(err)
			}
			checkRerun(t, s, want)

			// On disk: the second delta replaced the first one.
			s2 := openFS(t, crashed)
			res, err := s2.Recover(2)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Redone, []int64{2}) || len(res.Dropped) != 0 {
				t.Fatalf("Recover(2) after a crash before Apply = %+v, want batch 2 redone", res)
			}
			checkRerun(t, s2, want)
		})
	}
}

func checkRerun(t *testing.T, s *Store, want map[string]string) {
	t.Helper()
	checkCommitted(t, s, opA, 0, want)
	checkCommitted(t, s, opA, 1, map[string]string{})
	if n := s.Keys(opA); n != int64(len(want)) {
		t.Errorf("Keys(opA) = %d, want %d", n, len(want))
	}
	if v, ok, err := s.Slice(opB, 2, 0); ok || err != nil {
		t.Errorf("Slice of the first run: %q, %v, %v; want none", v, ok, err)
	}
	if v, ok, err := s.OpMeta(opA, "m"); ok || err != nil {
		t.Errorf("OpMeta of the first run: %q, %v, %v; want none", v, ok, err)
	}
}

// TestPartWriteAfterWriteDeltaIsNotApplied checks that Apply commits what
// WriteDelta made durable and nothing else. A Part written after
// WriteDelta is out of turn (ErrBatch): if Apply accepted such a write,
// the committed state would differ from what Recover rebuilds from the
// delta after a crash, so replicas and restarts would diverge.
func TestPartWriteAfterWriteDeltaIsNotApplied(t *testing.T) {
	fs := vfs.NewCrashableMem()
	s := openFS(t, fs)
	commit(t, s, 1, set(opA, 0, "a", "1"))
	b, err := s.Begin(2)
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, b, set(opA, 0, "a", "2"))
	if err := b.WriteDelta(); err != nil {
		t.Fatal(err)
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	p := b.Part(opA, 0)
	p.Set([]byte("a"), []byte("late"), true)
	p.Set([]byte("late"), []byte("late"), false)
	err = b.Apply()
	if err != nil {
		wantErr(t, "Apply after a write following WriteDelta", err, ErrBatch)
		return
	}
	// What a crash right after WriteDelta and a Recover would hold.
	s2 := openFS(t, crashed)
	if _, err := s2.Recover(2); err != nil {
		t.Fatal(err)
	}
	want := committed(t, s2, opA, 0)
	if got := committed(t, s, opA, 0); !maps.Equal(got, want) {
		t.Fatalf("Apply committed %v, but the delta (what Recover redoes) holds %v", sortedKVs(got), sortedKVs(want))
	}
	if got, want := s.Keys(opA), s2.Keys(opA); got != want {
		t.Fatalf("Keys after Apply = %d, after Recover of the delta = %d", got, want)
	}
}

// TestPartIsTheSame checks that Batch.Part returns the same writer for
// the same (op, part), so two tasks' handles share one overlay.
func TestPartIsTheSame(t *testing.T) {
	s := openMem(t)
	b, err := s.Begin(1)
	if err != nil {
		t.Fatal(err)
	}
	b.Part(opA, 3).Set([]byte("k"), []byte("v"), false)
	v, ok, err := b.Part(opA, 3).Get([]byte("k"))
	if err != nil || !ok || string(v) != "v" {
		t.Fatalf("Get through a second Part(opA, 3) = %q, %v, %v; want the first one's write", v, ok, err)
	}
	if _, ok, _ := b.Part(opA, 4).Get([]byte("k")); ok {
		t.Fatal("Part(opA, 4) sees a write of Part(opA, 3)")
	}
	if _, ok, _ := b.Part(opB, 3).Get([]byte("k")); ok {
		t.Fatal("Part(opB, 3) sees a write of Part(opA, 3)")
	}
}

// TestPartsConcurrently uses the Parts of one batch from one goroutine
// each, with slices and operator metadata set from all of them and the
// store read at the same time, as the engine's tasks do; run it with
// -race. The result must be every part's writes.
func TestPartsConcurrently(t *testing.T) {
	const parts, keys = 8, 300
	s := openMem(t)
	var base []write
	for part := range parts {
		for k := range keys {
			base = append(base, set(opA, part, fmt.Sprintf("k%04d", k), "base"))
		}
	}
	commit(t, s, 1, base...)
	b, err := s.Begin(2)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, parts+1)
	for part := range parts {
		wg.Go(func() { errs <- runPart(b, part, keys) })
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() { errs <- readWhileWriting(s, stop) })
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := b.WriteDelta(); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(); err != nil {
		t.Fatal(err)
	}
	var total int
	for part := range parts {
		want := make(map[string]string)
		for k := range keys {
			switch {
			case k%3 == 0: // deleted
			case k%3 == 1:
				want[fmt.Sprintf("k%04d", k)] = fmt.Sprintf("p%d", part)
			default:
				want[fmt.Sprintf("k%04d", k)] = "base"
			}
			want[fmt.Sprintf("new%04d", k)] = fmt.Sprintf("p%d", part)
		}
		checkCommitted(t, s, opA, part, want)
		total += len(want)
		if v, ok, err := s.Slice(opB, 2, part); err != nil || !ok || string(v) != fmt.Sprint(part) {
			t.Errorf("Slice(opB, 2, %d) = %q, %v, %v", part, v, ok, err)
		}
		if v, ok, err := s.OpMeta(opB, fmt.Sprint("m", part)); err != nil || !ok || string(v) != fmt.Sprint(part) {
			t.Errorf("OpMeta(opB, m%d) = %q, %v, %v", part, v, ok, err)
		}
	}
	if n := s.Keys(opA); n != int64(total) {
		t.Errorf("Keys(opA) = %d, want %d", n, total)
	}
}

// runPart is one task's work on partition part: it reads every key,
// updates a third, deletes a third, adds as many, and scans.
func runPart(b *Batch, part, keys int) error {
	p := b.Part(opA, part)
	for k := range keys {
		key := []byte(fmt.Sprintf("k%04d", k))
		_, ok, err := b.Part(opA, part).Get(key)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("part %d: committed key %s not found", part, key)
		}
		switch k % 3 {
		case 0:
			p.Delete(key, true)
		case 1:
			p.Set(key, []byte(fmt.Sprintf("p%d", part)), true)
		}
		p.Set([]byte(fmt.Sprintf("new%04d", k)), []byte(fmt.Sprintf("p%d", part)), false)
	}
	n := 0
	if err := p.Scan(func(k, v []byte) error { n++; return nil }); err != nil {
		return err
	}
	if want := keys - keys/3 + keys; n != want {
		return fmt.Errorf("part %d: Scan yielded %d keys, want %d", part, n, want)
	}
	b.SetSlice(opB, part, []byte(fmt.Sprint(part)))
	b.SetOpMeta(opB, fmt.Sprint("m", part), []byte(fmt.Sprint(part)))
	b.TruncateSlices(opB, 1)
	return nil
}

// readWhileWriting reads committed state until stop: it must stay the
// state of batch 1.
func readWhileWriting(s *Store, stop <-chan struct{}) error {
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		v, ok, err := s.Get(opA, 0, []byte("k0000"))
		if err != nil || !ok || string(v) != "base" {
			return fmt.Errorf("Store.Get during the batch = %q, %v, %v; want the committed value", v, ok, err)
		}
		view, err := s.View()
		if err != nil {
			return err
		}
		n := 0
		err = view.Scan(opA, 1, func(k, v []byte) error { n++; return nil })
		view.Close()
		if err != nil {
			return err
		}
		if n != 300 {
			return fmt.Errorf("View.Scan during the batch yielded %d keys, want 300", n)
		}
		if applied, err := s.Applied(); err != nil || applied != 1 {
			return fmt.Errorf("Applied during the batch = %d, %v; want 1", applied, err)
		}
	}
}
