package engine

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// ErrLineTooLong is reported (wrapped, with the line's length) for a line
// longer than Config.MaxLineBytes. The line is dropped and counted; the
// lines around it are read as usual.
var ErrLineTooLong = errors.New("engine: line longer than the maximum (raise --max-line-bytes to accept it)")

// lineReader reads newline-delimited lines for the line sources, with the
// rules they document: "\n" ends a line and a "\r" before it is removed
// (CRLF input reads like LF input); a last line without "\n" is a line;
// empty lines are records like any other; bytes that are not valid UTF-8
// pass through unchanged; a line longer than max bytes is consumed,
// dropped, and reported as ErrLineTooLong; the part of a line read before
// a read error (other than io.EOF) is dropped with the error.
type lineReader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// next returns the next line. At the end of input it returns io.EOF (or
// the reader's error). A too-long line yields ("", error wrapping
// ErrLineTooLong) and reading can go on.
func (lr *lineReader) next() (string, error) {
	lr.buf = lr.buf[:0]
	dropped := 0 // leading bytes of an over-long line already discarded
	for {
		chunk, err := lr.r.ReadSlice('\n')
		lr.buf = append(lr.buf, chunk...)
		if n := len(lr.buf) - 2; n > lr.max {
			// Over-long: keep only the last two bytes, a possible "\r\n",
			// so that the reported length is the line's, without its end.
			dropped += n
			lr.buf = lr.buf[:copy(lr.buf, lr.buf[n:])]
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err != nil && err != io.EOF:
			// A line cut short by a failure is not a line: the bytes read
			// of it are lost, not handed on as a record.
			return "", err
		case err != nil && dropped == 0 && len(lr.buf) == 0:
			return "", err
		}
		line := trimEOL(lr.buf)
		if n := dropped + len(line); n > lr.max {
			return "", fmt.Errorf("%w: %d bytes", ErrLineTooLong, n)
		}
		return string(line), nil
	}
}

// trimEOL removes a final "\n" and a "\r" before it. A "\r" not followed
// by "\n", even at the end of input, is part of the line.
func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}
