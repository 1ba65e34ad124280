// Package zeromq is a ZeroMQ receiver for Sluice (Spark's ZeroMQ
// receiver), on the pure-Go github.com/go-zeromq/zmq4: a PULL or SUB
// socket that connects to a peer and stores what it receives through the
// write-ahead log, every frame of a message a line.
//
// ZeroMQ has no acknowledgements: a message is gone from the sender once
// sent. What the receiver has taken from the socket and not yet stored,
// and what sits in the socket's queues, is lost in a crash, as in Spark,
// unless the sender retries on its own protocol. Once stored (each
// message is stored as one block before the next is read), a message is
// counted exactly once.
//
// The engine imports nothing of this package; it is an engine.Receiver
// like any other.
package zeromq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/sluice-stream/sluice/engine"
)

// Socket is the kind of socket the receiver opens.
type Socket int

const (
	// Pull connects a PULL socket to a PUSH peer.
	Pull Socket = iota
	// Sub connects a SUB socket to a PUB peer, subscribed to Topics.
	Sub
)

func (s Socket) String() string {
	if s == Sub {
		return "sub"
	}
	return "pull"
}

// Config says where and how the receiver connects.
type Config struct {
	// Endpoint is the peer's address, as "tcp://HOST:PORT".
	Endpoint string
	// Socket is Pull or Sub.
	Socket Socket
	// Topics are the SUB socket's subscriptions (prefixes of a message's
	// first frame); none subscribes to everything. A message of several
	// frames is taken to carry its topic as the first frame, which is
	// dropped; a message of one frame is stored whole, topic prefix and
	// all. Ignored for Pull.
	Topics []string
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case !strings.HasPrefix(c.Endpoint, "tcp://"):
		return fmt.Errorf("zeromq: endpoint %q must be tcp://HOST:PORT", c.Endpoint)
	case c.Socket != Pull && c.Socket != Sub:
		return fmt.Errorf("zeromq: socket %d must be Pull or Sub", c.Socket)
	case c.Socket == Pull && len(c.Topics) > 0:
		return errors.New("zeromq: topics are for a Sub socket only")
	}
	return nil
}

// Stream returns a stream of the frames the socket receives, named
// "zmq+<socket>:<endpoint>". A broken connection (an error from the
// socket) is returned from Receive, so the engine logs it, reports it to
// listeners and connects again after its backoff.
func Stream(c *engine.Context, cfg Config) (*engine.DStream[string], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	name := "zmq+" + cfg.Socket.String() + ":" + strings.TrimPrefix(cfg.Endpoint, "tcp://")
	return engine.ReceiverStream(c, name, &receiver{cfg: cfg}), nil
}

type receiver struct {
	cfg Config
}

// dialRetry is how long the socket waits between its own attempts to
// connect; after a failed Dial the engine's backoff takes over.
const dialRetry = 50 * time.Millisecond

func (r *receiver) Receive(ctx context.Context, out *engine.ReceiverOutput) error {
	sock := r.socket(ctx)
	defer sock.Close()
	stop := context.AfterFunc(ctx, func() { sock.Close() })
	defer stop()
	if r.cfg.Socket == Sub {
		topics := r.cfg.Topics
		if len(topics) == 0 {
			topics = []string{""}
		}
		for _, t := range topics {
			if err := sock.SetOption(zmq4.OptionSubscribe, t); err != nil {
				return fmt.Errorf("subscribing to %q: %w", t, err)
			}
		}
	}
	if err := sock.Dial(r.cfg.Endpoint); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("connecting to %s: %w", r.cfg.Endpoint, err)
	}
	for {
		msg, err := sock.Recv()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("receiving from %s: %w", r.cfg.Endpoint, err)
		}
		if err := out.Store(ctx, r.lines(msg)...); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("storing a message from %s: %w", r.cfg.Endpoint, err)
		}
	}
}

func (r *receiver) socket(ctx context.Context) zmq4.Socket {
	opts := []zmq4.Option{zmq4.WithDialerRetry(dialRetry), zmq4.WithDialerMaxRetries(0), zmq4.WithAutomaticReconnect(false)}
	if r.cfg.Socket == Sub {
		return zmq4.NewSub(ctx, opts...)
	}
	return zmq4.NewPull(ctx, opts...)
}

// lines turns a message into records: one per frame, less a SUB
// message's topic frame.
func (r *receiver) lines(msg zmq4.Msg) []string {
	frames := msg.Frames
	if r.cfg.Socket == Sub && len(frames) > 1 {
		frames = frames[1:]
	}
	out := make([]string, len(frames))
	for i, f := range frames {
		out[i] = string(f)
	}
	return out
}
