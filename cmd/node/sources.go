package main

import (
	"bufio"
	"context"
	_ "embed"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-stream/sluice/engine"
	"github.com/sluice-stream/sluice/engine/zeromq"
)

//go:embed sample.txt
var sampleText string

// sourceSchemes are the accepted --source forms, for help and errors.
var sourceSchemes = []string{
	"sample://            the built-in sample text, replayed in a loop (the default)",
	"ingest               reliable ingest: POST /api/ingest/lines (or ingest://NAME for another stream name)",
	"socket://HOST:PORT   lines from a TCP server, as Spark's socketTextStream (try: nc -lk 9999)",
	"dir:///PATH          lines of every new file moved into a directory, each read exactly once",
	"kafka://HOST:PORT[,HOST:PORT]/TOPIC[,TOPIC][?start=earliest|latest&group=G]\n" +
		"                       every partition of the topics, a record's value a line, exactly once (offsets kept in the metadata log; group G only mirrors them)",
	"zmq+pull://HOST:PORT frames from a ZeroMQ PUSH peer (a PULL socket connects to it)",
	"zmq+sub://HOST:PORT?topic=T  frames from a ZeroMQ PUB peer, topic T (repeatable; none: all)",
}

// openSource makes the input stream that --source names.
func openSource(c *engine.Context, spec string, sampleRate int) (*engine.DStream[string], error) {
	if spec == "ingest" {
		spec = "ingest://lines"
	}
	scheme, rest, ok := strings.Cut(spec, "://")
	if !ok {
		return nil, fmt.Errorf("--source %q has no scheme; use one of:\n  %s", spec, strings.Join(sourceSchemes, "\n  "))
	}
	switch scheme {
	case "sample":
		return engine.ReceiverStream(c, "sample", &sampleReceiver{lines: sampleLines(), perSecond: sampleRate}), nil
	case "ingest":
		if rest == "" || strings.ContainsAny(rest, "/\x00") {
			return nil, fmt.Errorf("--source %q: the stream name must be non-empty, without '/'", spec)
		}
		return engine.IngestStream(c, rest), nil
	case "socket":
		host, portText, err := net.SplitHostPort(rest)
		if err != nil {
			return nil, fmt.Errorf("--source %q: want socket://HOST:PORT: %v", spec, err)
		}
		port, err := strconv.Atoi(portText)
		if err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("--source %q: port %q must be a number from 1 to 65535", spec, portText)
		}
		return engine.SocketTextStream(c, host, port), nil
	case "dir":
		u, err := url.Parse(spec)
		if err != nil || u.Path == "" {
			return nil, fmt.Errorf("--source %q: want dir:///ABSOLUTE/PATH", spec)
		}
		return engine.TextFileStream(c, u.Path), nil
	case "kafka":
		return openKafka(c, spec)
	case "zmq+pull", "zmq+sub":
		return openZeroMQ(c, spec)
	}
	return nil, fmt.Errorf("--source %q: unknown scheme %q; use one of:\n  %s", spec, scheme, strings.Join(sourceSchemes, "\n  "))
}

// openZeroMQ makes a zeromq stream of zmq+pull://HOST:PORT or
// zmq+sub://HOST:PORT?topic=T.
func openZeroMQ(c *engine.Context, spec string) (*engine.DStream[string], error) {
	u, err := url.Parse(spec)
	if err != nil || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("--source %q: want zmq+pull://HOST:PORT or zmq+sub://HOST:PORT?topic=T", spec)
	}
	cfg := zeromq.Config{Endpoint: "tcp://" + u.Host, Socket: zeromq.Pull}
	if u.Scheme == "zmq+sub" {
		cfg.Socket, cfg.Topics = zeromq.Sub, u.Query()["topic"]
	} else if len(u.Query()) > 0 {
		return nil, fmt.Errorf("--source %q: a zmq+pull source takes no parameters", spec)
	}
	ds, err := zeromq.Stream(c, cfg)
	if err != nil {
		return nil, fmt.Errorf("--source %q: %w", spec, err)
	}
	return ds, nil
}

func sampleLines() []string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(sampleText))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// sampleReceiver replays the sample text at a steady rate, ten times a
// second, so that a node started with no arguments has something to count.
type sampleReceiver struct {
	lines     []string
	perSecond int
}

func (r *sampleReceiver) Receive(ctx context.Context, out *engine.ReceiverOutput) error {
	clock := out.Clock()
	const ticks = 10
	next := clock.Now()
	i, owed := 0, 0
	for {
		next = next.Add(time.Second / ticks)
		if err := clock.WaitUntil(ctx, next); err != nil {
			return nil
		}
		// Spread the rate over the ticks without losing the remainder.
		owed += r.perSecond
		n := owed / ticks
		owed -= n * ticks
		batch := make([]string, n)
		for j := range batch {
			batch[j] = r.lines[i%len(r.lines)]
			i++
		}
		if err := out.Add(ctx, batch...); err != nil {
			return nil // stopped while waiting for the rate limit
		}
	}
}
