package kafka

import (
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// StartOffset is where a partition is read from when the metadata log
// holds no position for it (the first start of a stream).
type StartOffset int

const (
	// Earliest reads a partition from its first record.
	Earliest StartOffset = iota
	// Latest reads only records produced after the receiver started.
	Latest
)

func (s StartOffset) String() string {
	if s == Latest {
		return "latest"
	}
	return "earliest"
}

// ParseStartOffset parses "earliest" or "latest".
func ParseStartOffset(s string) (StartOffset, error) {
	switch s {
	case "earliest", "":
		return Earliest, nil
	case "latest":
		return Latest, nil
	}
	return 0, fmt.Errorf("kafka: start offset %q: use earliest or latest", s)
}

// Config configures Stream.
type Config struct {
	// Brokers are the seed brokers, HOST:PORT.
	Brokers []string
	// Topics are read whole: every partition of each.
	Topics []string
	// Name names the engine stream (the receiver); "kafka" when empty.
	// Its blocks are found by name after a restart.
	Name string
	// Group, when set, is a consumer group the stored offsets are also
	// committed to, after they are stored, so that Kafka's tools show
	// the stream's lag. It is never read: the metadata log holds the
	// offsets the stream resumes from.
	Group string
	// StartOffset applies to a partition with no stored position.
	StartOffset StartOffset
	// Timeout bounds a request to the cluster at start (the topics'
	// metadata): past it, Receive fails and the engine retries.
	Timeout time.Duration
	// Opts are passed to the franz-go client as they are: TLS
	// (kgo.DialTLSConfig), SASL (kgo.SASL with a mechanism of
	// franz-go's pkg/sasl), client id, and so on.
	Opts []kgo.Opt
}

// DefaultConfig returns a Config that reads from the earliest offset,
// with a 10 s timeout; Brokers and Topics are left to fill in.
func DefaultConfig() Config {
	return Config{StartOffset: Earliest, Timeout: 10 * time.Second}
}

// Validate reports what is missing or out of range.
func (c Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("kafka: no brokers; give at least one HOST:PORT")
	case len(c.Topics) == 0:
		return errors.New("kafka: no topics to read")
	case c.Timeout < 0:
		return fmt.Errorf("kafka: timeout %v must be 0 (the default, 10s) or more", c.Timeout)
	case c.StartOffset != Earliest && c.StartOffset != Latest:
		return fmt.Errorf("kafka: start offset %d: use Earliest or Latest", c.StartOffset)
	}
	for _, t := range c.Topics {
		if t == "" {
			return errors.New("kafka: an empty topic name")
		}
	}
	return nil
}
