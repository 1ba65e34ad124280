package wal

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/vmihailenco/msgpack/v5"
)

// corruptionEnv is a log with ten appended blocks, on a MemFS.
type corruptionEnv struct {
	fs     vfs.FS
	dir    string
	log    *Log
	blocks []Block // appended, and acknowledged
}

func newCorruptionEnv(t *testing.T) *corruptionEnv {
	e := &corruptionEnv{fs: vfs.NewMem(), dir: "wal"}
	e.log = openLog(t, e.fs, e.dir, quietLogger())
	for seq := range uint64(10) {
		b := testBlock("s", "n", seq, 8)
		mustAppend(t, e.log, b)
		e.blocks = append(e.blocks, b)
	}
	return e
}

// A value case stores bad bytes for the block victim and expects Read and
// Iterate to report a *CorruptionError naming it and saying why.
var victim = BlockID{"s", "n", 4}

// goodFrame is the value Append would store for the victim.
func goodFrame(t *testing.T) []byte {
	v, err := encodeBlock(testBlock(victim.Stream, victim.Node, victim.Seq, 8))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// frameAround frames payload with a correct header and checksum.
func frameAround(t *testing.T, payload []byte) []byte {
	v, err := sealFrame(append(newFrame(len(payload)), payload...))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCorruption(t *testing.T) {
	cases := []struct {
		name   string
		value  func(t *testing.T) []byte // for a value case: what to store
		damage func(t *testing.T, e *corruptionEnv)
		want   string // what the *CorruptionError says is wrong
		is     error  // another error it must wrap, if any
	}{
		{name: "torn_tail", damage: tornTail(cutRecordInHalf)},
		{name: "torn_tail_garbage", damage: tornTail(garbleRecordEnd)},
		{name: "torn_tail_zeroes", damage: tornTail(zeroRecordEnd)},
		{name: "flipped_byte_in_synced_wal", damage: flipSyncedWALRecord},
		{name: "flipped_byte_in_block", want: "checksum mismatch", value: func(t *testing.T) []byte {
			v := goodFrame(t)
			v[headerLen+len(v[headerLen:])/2] ^= 0x20
			return v
		}},
		{name: "bad_magic", want: "bad magic 0x534c57bd", value: func(t *testing.T) []byte {
			v := goodFrame(t)
			v[3] ^= 0xff
			return v
		}},
		{name: "bad_version", want: "newer version of sluice; upgrade this binary: frame version 2", is: ErrVersion, value: func(t *testing.T) []byte {
			v := goodFrame(t)
			v[4] = formatVersion + 1
			return v
		}},
		{name: "version_zero", want: "bad version 0", value: func(t *testing.T) []byte {
			v := goodFrame(t)
			v[4] = 0
			return v
		}},
		{name: "truncated_frame", want: "truncated frame: header says", value: func(t *testing.T) []byte {
			v := goodFrame(t)
			return v[:len(v)-10]
		}},
		{name: "truncated_header", want: "truncated frame: 7 bytes, shorter than the 13-byte header", value: func(t *testing.T) []byte {
			return goodFrame(t)[:7]
		}},
		{name: "empty_value", want: "truncated frame: 0 bytes", value: func(t *testing.T) []byte {
			return []byte{}
		}},
		{name: "bytes_after_frame", want: "2 unexpected bytes after", value: func(t *testing.T) []byte {
			return append(goodFrame(t), 'x', 'y')
		}},
		{name: "undecodable_payload", want: "undecodable payload", value: func(t *testing.T) []byte {
			return frameAround(t, []byte{0xc1, 0xc1, 0xc1}) // 0xc1 is never used in msgpack
		}},
		{name: "bytes_after_payload", want: "1 bytes after the msgpack payload", value: func(t *testing.T) []byte {
			p, err := msgpack.Marshal(testBlock(victim.Stream, victim.Node, victim.Seq, 1))
			if err != nil {
				t.Fatal(err)
			}
			return frameAround(t, append(p, 0xc0))
		}},
		{name: "payload_of_another_block", want: "payload holds block s/n/99", value: func(t *testing.T) []byte {
			v, err := encodeBlock(testBlock("s", "n", 99, 8))
			if err != nil {
				t.Fatal(err)
			}
			return v
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newCorruptionEnv(t)
			if c.damage != nil {
				c.damage(t, e)
				return
			}
			key, _ := blockKey(victim)
			if err := e.log.putRaw(key, c.value(t)); err != nil {
				t.Fatal(err)
			}
			_, err := e.log.Read(victim)
			checkCorruption(t, "Read", err, c.want, c.is)
			checkCorruption(t, "Iterate", e.log.Iterate(func(Block) error { return nil }), c.want, c.is)
			if s := e.log.Stats(); s.Failed || !strings.Contains(s.LastError, c.want) {
				t.Errorf("Stats() = %+v, want LastError saying %q and not failed", s, c.want)
			}
			mustRead(t, e.log, e.blocks[victim.Seq+1]) // the neighbours are fine
		})
	}
}

func checkCorruption(t *testing.T, op string, err error, want string, is error) {
	t.Helper()
	var c *CorruptionError
	if !errors.As(err, &c) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%s = %v, want a *CorruptionError", op, err)
	}
	if c.Block != victim || !bytes.Equal(c.Key, mustKey(t, victim)) {
		t.Errorf("%s: corruption names block %s key %q, want %s", op, c.Block, c.Key, victim)
	}
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), victim.String()) {
		t.Errorf("%s: %q does not say %q about %s", op, err, want, victim)
	}
	if is != nil && !errors.Is(err, is) {
		t.Errorf("%s: %v does not wrap %v", op, err, is)
	}
}

func mustKey(t *testing.T, id BlockID) []byte {
	key, err := blockKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestCorruptKey(t *testing.T) {
	l := openLog(t, vfs.NewMem(), "wal", quietLogger())
	bad := []byte("bno-separators")
	if err := l.putRaw(bad, goodFrame(t)); err != nil {
		t.Fatal(err)
	}
	var c *CorruptionError
	err := l.Iterate(func(Block) error { return nil })
	if !errors.As(err, &c) || !bytes.Equal(c.Key, bad) || !strings.Contains(err.Error(), "malformed key") {
		t.Fatalf("Iterate over a malformed key = %v, want a *CorruptionError naming the key", err)
	}
}

// tornTail models a crash in the middle of writing the last block to
// Pebble's WAL: the blocks before it were synced, the last record is
// damaged by tear, and the log is reopened. Pebble v2 reads the tail of
// its newest WAL as the end of the log, so Open succeeds with every block
// before the torn one.
func tornTail(tear func(tail []byte) []byte) func(t *testing.T, e *corruptionEnv) {
	return func(t *testing.T, e *corruptionEnv) {
		wal := newestWAL(t, e.fs, e.dir)
		synced := fileSize(t, e.fs, wal)
		torn := testBlock("s", "n", 10, 8) // its Append never returned, in the crash being modeled
		mustAppend(t, e.log, torn)
		if err := e.log.Close(); err != nil {
			t.Fatal(err)
		}
		data := readFile(t, e.fs, wal)
		if len(data) <= int(synced) {
			t.Fatalf("the last Append did not grow %s (%d bytes)", wal, len(data))
		}
		writeFile(t, e.fs, wal, append(data[:synced:synced], tear(data[synced:])...))

		l := openLog(t, e.fs, e.dir, quietLogger())
		for _, b := range e.blocks {
			mustRead(t, l, b)
		}
		got, err := l.Read(torn.ID)
		switch {
		case errors.Is(err, ErrNotFound):
		case err == nil && equalBlocks(got, torn): // the tear spared it
		default:
			t.Fatalf("Read(torn block) = %v, %v; want ErrNotFound or the whole block", got, err)
		}
	}
}

// flipSyncedWALRecord damages the victim's record in Pebble's WAL, with
// more than a 32 KiB WAL block of synced records after it. The sync
// offsets in those records tell Pebble the damaged one had been synced, so
// Open fails rather than silently dropping everything after it.
func flipSyncedWALRecord(t *testing.T, e *corruptionEnv) {
	for seq := range uint64(200) {
		mustAppend(t, e.log, testBlock("s", "n", 10+seq, 8))
	}
	flipInWAL(t, e, []byte("s-n-4-record-3"))
	l, err := Open(e.dir, Options{FS: e.fs, Logger: quietLogger()})
	if err == nil {
		_ = l.Close()
	}
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "move the directory aside") {
		t.Fatalf("Open after a flipped byte in a synced WAL record = %v, want ErrCorrupt saying what to do", err)
	}
}

// TestCorruptionInLastWALBlockLosesTheRecordsAfterIt pins down a limit of
// Pebble v2.1.7, so an upgrade that lifts it is noticed: a damaged record
// in the last 32 KiB block of the newest WAL, with no later block to prove
// it had been synced, reads as a torn tail. Open succeeds, and the synced
// blocks after the damage are gone. The engine must treat ErrNotFound for
// a block the metadata log references as a lost block, and read a replica.
func TestCorruptionInLastWALBlockLosesTheRecordsAfterIt(t *testing.T) {
	e := newCorruptionEnv(t)
	flipInWAL(t, e, []byte("s-n-4-record-3"))
	l := openLog(t, e.fs, e.dir, quietLogger())
	for _, b := range e.blocks {
		_, err := l.Read(b.ID)
		switch {
		case b.ID.Seq < victim.Seq && err != nil:
			t.Errorf("Read(%s), before the damage: %v", b.ID, err)
		case b.ID.Seq >= victim.Seq && !errors.Is(err, ErrNotFound):
			t.Errorf("Read(%s), after the damage: %v; Pebble now keeps it: update doc.go and this test", b.ID, err)
		}
	}
}

// flipInWAL closes the log and flips a byte of the first occurrence of
// needle in its newest WAL file.
func flipInWAL(t *testing.T, e *corruptionEnv, needle []byte) {
	wal := newestWAL(t, e.fs, e.dir)
	if err := e.log.Close(); err != nil {
		t.Fatal(err)
	}
	data := readFile(t, e.fs, wal)
	i := bytes.Index(data, needle)
	if i < 0 {
		t.Fatalf("%q not in %s", needle, wal)
	}
	data[i] ^= 0x01
	writeFile(t, e.fs, wal, data)
}

// The tears of a record: tail is the bytes of the WAL past the last sync.
func cutRecordInHalf(tail []byte) []byte { return tail[:len(tail)/2] }

func garbleRecordEnd(tail []byte) []byte {
	for i := len(tail) / 2; i < len(tail); i++ {
		tail[i] = byte(i*131 + 7)
	}
	return tail
}

func zeroRecordEnd(tail []byte) []byte {
	clear(tail[len(tail)/2:])
	return tail
}

func newestWAL(t *testing.T, fs vfs.FS, dir string) string {
	names, err := fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var logs []string
	for _, n := range names {
		if isWALFile(n) {
			logs = append(logs, n)
		}
	}
	if len(logs) == 0 {
		t.Fatalf("no WAL file in %s: %v", dir, names)
	}
	slices.Sort(logs) // Pebble's WAL names are zero-padded numbers
	return fs.PathJoin(dir, logs[len(logs)-1])
}

func fileSize(t *testing.T, fs vfs.FS, name string) int64 {
	fi, err := fs.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func readFile(t *testing.T, fs vfs.FS, name string) []byte {
	f, err := fs.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func writeFile(t *testing.T, fs vfs.FS, name string, data []byte) {
	f, err := fs.Create(name, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
