package state

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// The crash tests run random batches on a crashable in-memory filesystem
// and, at each failpoint of every batch, take the disk as a crash there
// leaves it, reopen it, Recover as the metadata log would say, and compare
// with a model of the committed state. A failure names its seed; rerun
// it with -run 'TestCrash/seed=N'.
const (
	crashSeeds   = 8
	crashBatches = 6
	crashParts   = 3
	crashKeys    = 30 // keys per (op, part): batches update and delete them
)

// model is what the committed state must be after a batch.
type model struct {
	kv     map[partID]map[string]string
	slices map[sliceID]string
	meta   map[string]string // operator opB's metadata
}

type sliceID struct {
	op   int
	t    int64
	part int
}

func newModel() *model {
	return &model{kv: make(map[partID]map[string]string), slices: make(map[sliceID]string), meta: make(map[string]string)}
}

func (m *model) clone() *model {
	c := newModel()
	for id, kv := range m.kv {
		c.kv[id] = maps.Clone(kv)
	}
	c.slices = maps.Clone(m.slices)
	c.meta = maps.Clone(m.meta)
	return c
}

func (m *model) apply(w write) {
	id := partID{w.op, w.part}
	if m.kv[id] == nil {
		m.kv[id] = make(map[string]string)
	}
	if w.del {
		delete(m.kv[id], w.key)
	} else {
		m.kv[id][w.key] = w.val
	}
}

func (m *model) keys(op int) int64 {
	var n int
	for id, kv := range m.kv {
		if id.op == op {
			n += len(kv)
		}
	}
	return int64(n)
}

// randomWrites is a batch's writes: sets and deletes of keys that often
// exist already.
func randomWrites(rng *rand.Rand, bt int64) []write {
	ws := make([]write, 1+rng.IntN(40))
	for i := range ws {
		op := []int{opA, opB}[rng.IntN(2)]
		part := rng.IntN(crashParts)
		key := fmt.Sprintf("k%02d", rng.IntN(crashKeys))
		if rng.IntN(10) < 3 {
			ws[i] = del(op, part, key)
		} else {
			ws[i] = set(op, part, key, fmt.Sprintf("v%d.%d", bt, i))
		}
	}
	return ws
}

// crashImage is the disk at a failpoint, and what Recover must make of it.
type crashImage struct {
	failpoint string
	fs        *vfs.MemFS
	last      int64  // the metadata log's last completed batch
	want      *model // the state Recover must leave
	// The batch whose Apply may be lost: Open finds it applied or finds
	// its delta, and Recover redoes it.
	mayRedo int64
}

// TestCrash crashes at each failpoint of every batch:
//
//   - BeforeWriteDelta (the batch half written): the state of the batch
//     before, whose own unsynced Apply may need its delta redone;
//   - AfterWriteDeltaBeforeApply: Recover(t) applies t exactly, and
//     Recover(t-1) drops it;
//   - AfterApply (Apply is not synced): t is applied or its delta is
//     there, and Recover(t) gives t's state either way; the disk is taken
//     with none, some and all of the unsynced writes.
func TestCrash(t *testing.T) {
	for seed := uint64(1); seed <= crashSeeds; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { runCrash(t, seed) })
	}
}

func runCrash(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	fs := vfs.NewCrashableMem()
	s := openFS(t, fs)
	committedModel := newModel()
	var redone, applied int
	for bt := int64(1); bt <= crashBatches; bt++ {
		next := committedModel.clone()
		ws := randomWrites(rng, bt)
		b, err := s.Begin(bt)
		if err != nil {
			t.Fatal(err)
		}
		half := len(ws) / 2
		writeAll(t, b, ws[:half]...)
		images := []crashImage{{
			failpoint: "BeforeWriteDelta", fs: fs.CrashClone(vfs.CrashCloneCfg{}),
			last: bt - 1, want: committedModel, mayRedo: bt - 1,
		}}
		writeAll(t, b, ws[half:]...)
		for _, w := range ws {
			next.apply(w)
		}
		part := rng.IntN(crashParts)
		b.SetSlice(opA, part, []byte(fmt.Sprint("slice", bt)))
		next.slices[sliceID{opA, bt, part}] = fmt.Sprint("slice", bt)
		b.SetOpMeta(opB, "last", []byte(fmt.Sprint(bt)))
		next.meta["last"] = fmt.Sprint(bt)
		if err := b.WriteDelta(); err != nil {
			t.Fatal(err)
		}
		images = append(images,
			crashImage{failpoint: "AfterWriteDeltaBeforeApply/log says t completed", fs: fs.CrashClone(vfs.CrashCloneCfg{}),
				last: bt, want: next, mayRedo: bt},
			crashImage{failpoint: "AfterWriteDeltaBeforeApply/log says t-1 completed", fs: fs.CrashClone(vfs.CrashCloneCfg{}),
				last: bt - 1, want: committedModel, mayRedo: bt - 1})
		if err := b.Apply(); err != nil {
			t.Fatal(err)
		}
		for _, pct := range []int{0, 50, 100} {
			cfg := vfs.CrashCloneCfg{UnsyncedDataPercent: pct}
			if pct > 0 { // CrashClone draws even at 100%
				cfg.RNG = rand.New(rand.NewPCG(seed, uint64(bt)))
			}
			images = append(images, crashImage{failpoint: fmt.Sprintf("AfterApply/%d%% of unsynced data", pct),
				fs: fs.CrashClone(cfg), last: bt, want: next, mayRedo: bt})
		}
		for _, img := range images {
			r := checkCrashImage(t, bt, img)
			redone += r
			applied += 1 - r
		}
		committedModel = next
	}
	t.Logf("Open found the batch to redo applied %d times, and Recover redid it %d times", applied, redone)
	checkModel(t, s, "the store that never crashed", committedModel)
}

// checkCrashImage opens img, recovers it and compares it with img.want. It
// returns 1 if Recover redid img.mayRedo, 0 if Open found it applied.
func checkCrashImage(t *testing.T, bt int64, img crashImage) int {
	t.Helper()
	where := fmt.Sprintf("batch %d, crash %s", bt, img.failpoint)
	s, err := Open(storeDir, Options{FS: img.fs, Logger: quietLogger(), CacheBytes: 1 << 20})
	if err != nil {
		t.Fatalf("%s: Open: %v", where, err)
	}
	defer s.Close()
	before, err := s.Applied()
	if err != nil {
		t.Fatalf("%s: Applied: %v", where, err)
	}
	if before != img.mayRedo && before != img.mayRedo-1 {
		t.Fatalf("%s: Open finds batch %d applied, want %d or %d", where, before, img.mayRedo-1, img.mayRedo)
	}
	res, err := s.Recover(img.last)
	if err != nil {
		t.Fatalf("%s: Recover(%d): %v", where, img.last, err)
	}
	wantRedone := []int64(nil)
	if before < img.mayRedo {
		wantRedone = []int64{img.mayRedo}
	}
	if !slices.Equal(res.Redone, wantRedone) || res.Applied != img.last {
		t.Fatalf("%s: Open found %d applied, Recover(%d) = %+v; want redone %v, applied %d",
			where, before, img.last, res, wantRedone, img.last)
	}
	checkModel(t, s, where, img.want)
	return len(wantRedone)
}

// checkModel fails unless s holds exactly m.
func checkModel(t *testing.T, s *Store, where string, m *model) {
	t.Helper()
	for _, op := range []int{opA, opB} {
		for part := range crashParts {
			want := m.kv[partID{op, part}]
			if want == nil {
				want = map[string]string{}
			}
			if got := committed(t, s, op, part); !maps.Equal(got, want) {
				t.Fatalf("%s: %d/%d holds\n %v\nwant\n %v", where, op, part, sortedKVs(got), sortedKVs(want))
			}
		}
		if got, want := s.Keys(op), m.keys(op); got != want {
			t.Fatalf("%s: Keys(%d) = %d, want %d", where, op, got, want)
		}
	}
	for bt := int64(1); bt <= crashBatches; bt++ {
		for part := range crashParts {
			v, ok, err := s.Slice(opA, bt, part)
			want, wantOK := m.slices[sliceID{opA, bt, part}]
			if err != nil || ok != wantOK || string(v) != want {
				t.Fatalf("%s: Slice(%d, %d, %d) = %q, %v, %v; want %q, %v", where, opA, bt, part, v, ok, err, want, wantOK)
			}
		}
	}
	v, ok, err := s.OpMeta(opB, "last")
	if want, wantOK := m.meta["last"]; err != nil || ok != wantOK || string(v) != want {
		t.Fatalf("%s: OpMeta(opB, last) = %q, %v, %v; want %q, %v", where, v, ok, err, want, wantOK)
	}
}
