package rpc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	for _, p := range [][]byte{{}, []byte("x"), bytes.Repeat([]byte{7}, 1<<16)} {
		if err := writeFrame(&buf, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []int{0, 1, 1 << 16} {
		got, err := readFrame(&buf, DefaultMaxFrame)
		if err != nil || len(got) != want {
			t.Fatalf("got %d bytes, %v; want %d", len(got), err, want)
		}
	}
	if _, err := readFrame(&buf, DefaultMaxFrame); err != io.EOF {
		t.Fatalf("at end: %v, want io.EOF", err)
	}
}

// frameBytes frames payload, then lets a case spoil it.
func frameBytes(payload []byte, spoil func([]byte)) []byte {
	var buf bytes.Buffer
	_ = writeFrame(&buf, payload)
	b := buf.Bytes()
	if spoil != nil {
		spoil(b)
	}
	return b
}

func goodRequest() []byte {
	b, _ := msgpack.Marshal(&request{ID: 1, From: "raw", Method: "echo"})
	return b
}

// TestMalformedInput: each case opens a raw connection and writes bad
// bytes. The server must log a warning naming the remote address (unless
// the case is an ordinary torn close), close that connection, and go on
// serving a good client.
func TestMalformedInput(t *testing.T) {
	checkLeaks(t)
	logs := newLogRecorder()
	eps := newTCPCluster(t, 2, Options{MaxFrame: 1 << 20, Logger: logs.logger()})
	eps[1].Handle("echo", echo)
	pre := rpcPreamble()
	cases := []struct {
		name string
		send []byte
		warn string // "" when the close is not worth a warning
	}{
		{"unknown_lane", []byte("GET / HTTP/1.1\r\n\r\n"), "unknown lane byte"},
		{"bad_magic", []byte("MXXXX\x01"), "magic"},
		{"unknown_version", []byte("MSLRP\x09"), "version 9"},
		{"bad_crc", append(pre, frameBytes(goodRequest(), func(b []byte) { b[5] ^= 0xff })...), "crc32c"},
		{"over_max_frame", append(pre, frameBytes(goodRequest(), func(b []byte) {
			binary.BigEndian.PutUint32(b[0:4], 1<<20+1)
		})...), "over max frame"},
		{"undecodable_msgpack", append(pre, frameBytes([]byte{0xc1, 0xc1, 0xc1}, nil)...), "malformed"},
		{"wrong_msgpack_shape", append(pre, frameBytes([]byte{0xa3, 'a', 'b', 'c'}, nil)...), "malformed"},
		{"torn_frame", append(pre, frameBytes(goodRequest(), nil)[:10]...), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", eps[1].Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			if tc.name == "torn_frame" {
				c.(*net.TCPConn).CloseWrite()
			}
			if tc.warn != "" {
				logs.await(t, "WARN", tc.warn, "remote="+c.LocalAddr().String())
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("server kept the connection open (read %d, %v)", n, err)
			}
			var resp echoResp
			if err := eps[0].Call(context.Background(), "n2", "echo", echoReq{Text: "still"}, &resp); err != nil || resp.Text != "still" {
				t.Fatalf("good client after %s: %+v, %v", tc.name, resp, err)
			}
		})
	}
}

func TestPreambleIsFrozen(t *testing.T) {
	if got := string(rpcPreamble()); got != "MSLRP\x01" {
		t.Fatalf("preamble %q changed; it is part of the wire format", got)
	}
	b, _ := msgpack.Marshal(&request{ID: 1, From: "a", Method: "m", DeadlineMS: 2, Body: []byte{3}})
	// msgpack/v5 writes uint64 and int64 at full width (0xcf, 0xd3).
	want := []byte{0x95, 0xcf, 0, 0, 0, 0, 0, 0, 0, 1, 0xa1, 'a', 0xa1, 'm', 0xd3, 0, 0, 0, 0, 0, 0, 0, 2, 0xc4, 0x01, 0x03}
	if !bytes.Equal(b, want) {
		t.Fatalf("request encodes as % x, want % x (part of the wire format)", b, want)
	}
}
