package engine

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
)

// lineResult is one result of lineReader.next: a line, or the length an
// over-long line's error reports.
type lineResult struct {
	line    string
	tooLong int // > 0: the line was rejected with ErrLineTooLong
}

func (r lineResult) String() string {
	if r.tooLong > 0 {
		return fmt.Sprintf("<too long: %d bytes>", r.tooLong)
	}
	return fmt.Sprintf("%q", r.line)
}

func lineOK(line string) lineResult { return lineResult{line: line} }
func lineTooLong(n int) lineResult  { return lineResult{tooLong: n} }
func linesOK(lines ...string) []lineResult {
	out := make([]lineResult, len(lines))
	for i, l := range lines {
		out[i] = lineOK(l)
	}
	return out
}

// smallBufLineReader is a lineReader over the smallest bufio buffer (16
// bytes), so that lines, and the "\r\n" ending them, span buffer refills.
func smallBufLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 16), max: max}
}

// readLines reads lr to its end. An over-long line's error must wrap
// ErrLineTooLong and end with ": <length> bytes".
func readLines(lr *lineReader) ([]lineResult, error) {
	var out []lineResult
	for {
		line, err := lr.next()
		switch {
		case err == io.EOF:
			return out, nil
		case errors.Is(err, ErrLineTooLong):
			var n int
			rest, found := strings.CutPrefix(err.Error(), ErrLineTooLong.Error()+": ")
			if _, serr := fmt.Sscanf(rest, "%d bytes", &n); !found || serr != nil || n <= 0 {
				return out, fmt.Errorf("error text %q does not give the line's length", err)
			}
			out = append(out, lineTooLong(n))
		case err != nil:
			return out, err
		default:
			out = append(out, lineOK(line))
		}
	}
}

func TestLineReader(t *testing.T) {
	const kib = 1 << 10
	big := strings.Repeat("z", 200*kib) // over the 64 KiB bufio buffer
	mib := strings.Repeat("m", 1<<20)
	tests := []struct {
		name  string
		max   int // 0: DefaultConfig().MaxLineBytes
		input string
		want  []lineResult
	}{
		{"empty input", 8, "", nil},
		{"LF lines", 8, "a\nbb\nccc\n", linesOK("a", "bb", "ccc")},
		{"CRLF stripped", 8, "a\r\nbb\r\n", linesOK("a", "bb")},
		{"CRLF and LF mixed", 8, "a\r\nb\nc\r\n", linesOK("a", "b", "c")},
		{"lone CR in the middle kept", 8, "a\rb\nc\n", linesOK("a\rb", "c")},
		{"only the CR before LF removed", 8, "a\r\r\n", linesOK("a\r")},
		{"CR at end of input kept", 8, "a\nb\r", linesOK("a", "b\r")},
		{"empty lines kept", 8, "\n\na\n\r\n\n", linesOK("", "", "a", "", "")},
		{"last line without newline", 8, "a\nbc", linesOK("a", "bc")},
		{"invalid UTF-8 unchanged", 8, "\xff\xfe\n\xc3\x28\r\n", linesOK("\xff\xfe", "\xc3\x28")},
		{"line exactly at max", 5, "abcde\nf\n", linesOK("abcde", "f")},
		{"line exactly at max with CRLF", 5, "abcde\r\nf\r\n", linesOK("abcde", "f")},
		{"last line exactly at max", 5, "a\nabcde", linesOK("a", "abcde")},
		{"one byte over max rejected", 5, "x\nabcdef\ny\n", []lineResult{lineOK("x"), lineTooLong(6), lineOK("y")}},
		{"one byte over max with CRLF", 5, "x\r\nabcdef\r\ny\r\n", []lineResult{lineOK("x"), lineTooLong(6), lineOK("y")}},
		{"over max by a CR", 5, "abcde\r\r\nf\n", []lineResult{lineTooLong(6), lineOK("f")}},
		{"over-long lines in a row", 3, "aaaa\nbbbbbbbbbb\nc\n", []lineResult{lineTooLong(4), lineTooLong(10), lineOK("c")}},
		{"over-long final line without newline", 5, "a\nabcdefgh", []lineResult{lineOK("a"), lineTooLong(8)}},
		{"over-long final line ending in CR", 5, "a\nabcde\r", []lineResult{lineOK("a"), lineTooLong(6)}},
		{"over-long line longer than the bufio buffer", 100 * kib, "a\n" + big + "\nb\n",
			[]lineResult{lineOK("a"), lineTooLong(200 * kib), lineOK("b")}},
		{"over-long CRLF line longer than the bufio buffer", 100 * kib, "a\r\n" + big + "\r\nb\r\n",
			[]lineResult{lineOK("a"), lineTooLong(200 * kib), lineOK("b")}},
		{"over-long final line longer than the bufio buffer", 100 * kib, "a\n" + big,
			[]lineResult{lineOK("a"), lineTooLong(200 * kib)}},
		{"line longer than the bufio buffer accepted", 300 * kib, big + "\n", linesOK(big)},
		{"1 MiB line accepted by default", 0, mib + "\r\nx\n", linesOK(mib, "x")},
		{"1 MiB + 1 line rejected by default", 0, mib + "m\nx\n", []lineResult{lineTooLong(1<<20 + 1), lineOK("x")}},
	}
	readers := []struct {
		name string
		new  func(io.Reader, int) *lineReader
	}{
		{"64KiB buffer", newLineReader},
		{"16B buffer", smallBufLineReader},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				max := tt.max
				if max == 0 {
					max = DefaultConfig().MaxLineBytes
				}
				got, err := readLines(rd.new(strings.NewReader(tt.input), max))
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("got  %v\nwant %v", abbrevResults(got), abbrevResults(tt.want))
				}
			})
		}
	}
}

// abbrevResults shortens long lines for failure messages.
func abbrevResults(rs []lineResult) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		s := r.String()
		if len(s) > 40 {
			s = fmt.Sprintf("%s...(%d bytes)", s[:20], len(r.line))
		}
		out[i] = s
	}
	return out
}

// TestLineReaderDefaultMax checks that a zero MaxLineBytes means 1 MiB.
func TestLineReaderDefaultMax(t *testing.T) {
	if got := (Config{}).withDefaults().MaxLineBytes; got != 1<<20 {
		t.Errorf("default MaxLineBytes = %d, want %d", got, 1<<20)
	}
}

// failingReader returns its data, then err.
type failingReader struct {
	data string
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestLineReaderReadError checks that a line cut short by a read error (a
// broken connection) is dropped with the error, not handed on as a
// truncated record, and that over-long lines are not reported twice.
func TestLineReaderReadError(t *testing.T) {
	errBroken := errors.New("connection reset")
	tests := []struct {
		name string
		data string
		want []lineResult
	}{
		{"error after whole lines", "a\nb\n", linesOK("a", "b")},
		{"error mid-line", "a\nbc", linesOK("a")},
		{"error mid over-long line", "a\n" + strings.Repeat("x", 40), linesOK("a")},
		{"error after CR", "a\nb\r", linesOK("a")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lr := smallBufLineReader(&failingReader{data: tt.data, err: errBroken}, 8)
			got, err := readLines(lr)
			if !errors.Is(err, errBroken) {
				t.Errorf("error %v, want %v", err, errBroken)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}

// linesModel is what lineReader must return for input: "\n"-separated
// lines, a "\r" before each "\n" removed, a last line without "\n" kept,
// lines over max rejected with their length.
func linesModel(input string, max int) []lineResult {
	var out []lineResult
	for input != "" {
		line, rest, found := strings.Cut(input, "\n")
		if found {
			line = strings.TrimSuffix(line, "\r")
		}
		if len(line) > max {
			out = append(out, lineTooLong(len(line)))
		} else {
			out = append(out, lineOK(line))
		}
		input = rest
	}
	return out
}

// FuzzLineReader checks that lineReader never panics, agrees with
// linesModel, and, for input without over-long lines, that joining the
// lines with "\n" gives back the input with the "\r" before every "\n"
// removed (and its final "\n", if any, dropped).
func FuzzLineReader(f *testing.F) {
	for _, seed := range []string{
		"", "\n", "a\nb", "a\r\nb\r\n", "a\r\r\n", "a\rb\n\r", "\n\n\r\n",
		"\xff\xfe\n\xc3\x28", strings.Repeat("x", 40) + "\r\ny\n", "0123456789abcdef\r\n",
	} {
		f.Add([]byte(seed), uint8(8))
	}
	f.Fuzz(func(t *testing.T, data []byte, m uint8) {
		max := int(m%64) + 1
		input := string(data)
		want := linesModel(input, max)
		for _, newReader := range []func(io.Reader, int) *lineReader{newLineReader, smallBufLineReader} {
			got, err := readLines(newReader(strings.NewReader(input), max))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("max %d, input %q:\ngot  %v\nwant %v", max, input, got, want)
			}
		}
		lines := make([]string, 0, len(want))
		for _, r := range want {
			if r.tooLong > 0 {
				return
			}
			lines = append(lines, r.line)
		}
		joined := strings.Join(lines, "\n")
		if strings.HasSuffix(input, "\n") {
			joined += "\n"
		}
		if stripped := strings.ReplaceAll(input, "\r\n", "\n"); joined != stripped {
			t.Fatalf("input %q: lines joined %q, want %q", input, joined, stripped)
		}
	})
}
