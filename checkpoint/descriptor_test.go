package checkpoint

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// TestDescriptorLayout pins the header bytes down: they are part of the
// on-disk format, and a change must fail here before it ships.
func TestDescriptorLayout(t *testing.T) {
	m := Manifest{Meta: testMeta, Files: []File{{Name: "a", Size: 1, CRC: 2}}}
	b, err := encodeDescriptor(m)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{'S', 'L', 'C', 'K', 1}; !bytes.Equal(b[:5], want) {
		t.Errorf("descriptor opens with % x, want % x", b[:5], want)
	}
	payload, err := openFrame(b)
	if err != nil {
		t.Fatalf("openFrame of what encodeDescriptor wrote: %v", err)
	}
	var keys map[string]any
	if err := msgpack.Unmarshal(payload, &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "g", "t", "f"} {
		if _, ok := keys[k]; !ok || len(keys) != 4 {
			t.Errorf("payload keys %v, want exactly a, g, t, f", keys)
		}
	}
	got, err := decodeManifest(payload)
	if err != nil || got.Meta != m.Meta || len(got.Files) != 1 || got.Files[0] != m.Files[0] {
		t.Errorf("decodeManifest = %+v, %v; want %+v", got, err, m)
	}
	ref, err := msgpack.Marshal(Ref{Time: 1, Name: "n", Sum: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := msgpack.Unmarshal(ref, &keys); err != nil || len(keys) != 3 || keys["t"] == nil || keys["n"] == nil || keys["s"] == nil {
		t.Errorf("Ref encodes as %v, want keys t, n, s", keys)
	}
}

// TestDecodeManifestRejects checks the file lists Write cannot have
// written: Verify's missing/extra check relies on a sorted list of clean
// names inside data/.
func TestDecodeManifestRejects(t *testing.T) {
	cases := []struct {
		name   string
		files  []File
		reason string
	}{
		{"unsorted", []File{{Name: "b"}, {Name: "a"}}, "not sorted"},
		{"listed_twice", []File{{Name: "a"}, {Name: "a"}}, "listed twice"},
		{"empty_name", []File{{Name: ""}}, "invalid name"},
		{"escapes_data", []File{{Name: "../../state/x"}}, "invalid name"},
		{"absolute", []File{{Name: "/etc/passwd"}}, "invalid name"},
		{"unclean", []File{{Name: "a//b"}}, "invalid name"},
		{"negative_size", []File{{Name: "a", Size: -1}}, "negative size"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			payload, err := msgpack.Marshal(&Manifest{Meta: testMeta, Files: c.files})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := decodeManifest(payload); err == nil || !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("decodeManifest = %v, want an error saying %q", err, c.reason)
			}
		})
	}
	if _, err := decodeManifest([]byte{0xc1}); err == nil {
		t.Errorf("decodeManifest of an undecodable payload succeeded")
	}
}

// TestOpenFrameNewerVersion checks that a newer descriptor says to upgrade.
func TestOpenFrameNewerVersion(t *testing.T) {
	b, err := encodeDescriptor(Manifest{Meta: testMeta})
	if err != nil {
		t.Fatal(err)
	}
	b[4] = formatVersion + 1
	if _, err := openFrame(b); !errors.Is(err, ErrVersion) {
		t.Fatalf("openFrame of version %d = %v, want ErrVersion", b[4], err)
	}
}

// TestNames checks the directory names of batch times.
func TestNames(t *testing.T) {
	cases := []struct {
		name string
		time int64
		ok   bool
	}{
		{"ckpt-00000001764064800000", 1764064800000, true},
		{"ckpt-00000000000000000000", 0, true},
		{"ckpt-09223372036854775807", 1<<63 - 1, true},
		{"ckpt-09223372036854775808", 0, false}, // overflows int64
		{"ckpt-99999999999999999999", 0, false},
		{"ckpt-0000000000000000000", 0, false},   // 19 digits
		{"ckpt-000000000000000000000", 0, false}, // 21 digits
		{"ckpt--0000000000000000001", 0, false},
		{"ckpt-00000001764064800000.tmp", 0, false},
		{"ckpt-00000001764064800000.broken-1", 0, false},
		{"CKPT-00000001764064800000", 0, false},
		{"../ckpt-0000000176406480", 0, false},
		{"", 0, false},
	}
	for _, c := range cases {
		got, ok := parseName(c.name)
		if ok != c.ok || got != c.time {
			t.Errorf("parseName(%q) = %d, %v; want %d, %v", c.name, got, ok, c.time, c.ok)
		}
		if c.ok && nameFor(c.time) != c.name {
			t.Errorf("nameFor(%d) = %q, want %q", c.time, nameFor(c.time), c.name)
		}
	}
}
