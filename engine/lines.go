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
// dropped, and reported as ErrLineTooLong.
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
	tooLong := 0
	for {
		chunk, err := lr.r.ReadSlice('\n')
		if tooLong > 0 || len(lr.buf)+len(chunk) > lr.max+2 { // +2: room for "\r\n"
			tooLong += len(lr.buf) + len(chunk)
			lr.buf = lr.buf[:0]
		} else {
			lr.buf = append(lr.buf, chunk...)
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err != nil && (tooLong > 0 || len(lr.buf) == 0):
			if tooLong > 0 && err == io.EOF {
				return "", fmt.Errorf("%w: %d bytes", ErrLineTooLong, tooLong)
			}
			return "", err
		}
		if tooLong > 0 {
			return "", fmt.Errorf("%w: %d bytes", ErrLineTooLong, tooLong)
		}
		line := trimEOL(lr.buf)
		if len(line) > lr.max {
			return "", fmt.Errorf("%w: %d bytes", ErrLineTooLong, len(line))
		}
		return string(line), nil
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}
