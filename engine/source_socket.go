package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
)

// SocketTextStream returns a stream of the lines read from a TCP server at
// host:port (Spark's socketTextStream): Sluice connects as a client,
// reads newline-delimited UTF-8 lines (see lineReader for CRLF, empty and
// over-long lines), and reconnects with backoff when the server goes away,
// logging every attempt. Records in flight when a connection breaks may be
// lost: a socket has no acknowledgements; use the ingest endpoint for
// reliable input.
func SocketTextStream(c *Context, host string, port int) *DStream[string] {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	return ReceiverStream(c, "socket:"+addr, &socketReceiver{addr: addr})
}

type socketReceiver struct {
	addr string
}

func (r *socketReceiver) Receive(ctx context.Context, out *ReceiverOutput) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", r.addr)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", r.addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	out.s.c.log.Info("receiver connected", "stream", out.s.stream, "addr", r.addr)
	lr := newLineReader(conn, out.MaxLineBytes())
	for {
		line, err := lr.next()
		switch {
		case errors.Is(err, ErrLineTooLong):
			out.ReportError(err)
		case err == io.EOF:
			return fmt.Errorf("%s closed the connection", r.addr)
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading from %s: %w", r.addr, err)
		default:
			if err := out.Add(ctx, line); err != nil {
				return nil // stopped while waiting for the rate limit
			}
		}
	}
}
