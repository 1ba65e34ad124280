package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-stream/sluice/engine"
)

// SinkConfig configures a Sink.
type SinkConfig struct {
	// Brokers are the seed brokers, HOST:PORT.
	Brokers []string
	// Topic is the output topic; it must exist.
	Topic string
	// App and Name name the transactional ids, "sluice-<App>-<Name>-p<N>"
	// for partition N: they must be the same across restarts of an
	// application and differ between the sinks of a cluster.
	App, Name string
	// Timeout bounds the write of one partition, and the read of the
	// output topic at first use (10 s when 0).
	Timeout time.Duration
	// Opts are passed to the franz-go clients as they are (TLS, SASL).
	Opts []kgo.Opt
}

// Validate reports what is missing.
func (c SinkConfig) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("kafka: sink: no brokers; give at least one HOST:PORT")
	case c.Topic == "":
		return errors.New("kafka: sink: no topic")
	case c.App == "" || c.Name == "":
		return errors.New("kafka: sink: App and Name name its transactional ids; give both")
	case c.Timeout < 0:
		return fmt.Errorf("kafka: sink: timeout %v must be 0 (the default, 10s) or more", c.Timeout)
	}
	return nil
}

// Sink writes every (batch, partition) of a stream to a Kafka topic
// exactly once, in one transaction per partition and batch (see the
// package documentation for how a re-run learns what was committed).
// Format turns a record into a Kafka key (nil for none) and value.
type Sink[T any] struct {
	cfg    SinkConfig
	format func(T) (key, value []byte)

	mu struct {
		sync.Mutex
		parts []*sinkPartition // nil until the first Write
	}
}

var _ engine.Sink[string] = (*Sink[string])(nil)

// NewSink returns a Sink; it connects at the first Write.
func NewSink[T any](cfg SinkConfig, format func(T) (key, value []byte)) (*Sink[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if format == nil {
		return nil, errors.New("kafka: sink: a nil format")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	return &Sink[T]{cfg: cfg, format: format}, nil
}

// sinkPartition is the producer of one partition of the output and what
// it knows it committed.
type sinkPartition struct {
	mu    sync.Mutex
	tid   string
	cl    *kgo.Client // nil when the producer must be (re)loaded
	last  engine.Time // the latest batch committed; valid with cl
	known bool        // whether any batch was committed
}

// TransactionalID is the id of partition p's producer.
func (s *Sink[T]) TransactionalID(p int) string {
	return fmt.Sprintf("sluice-%s-%s-p%d", s.cfg.App, s.cfg.Name, p)
}

func (s *Sink[T]) base() []kgo.Opt {
	return append([]kgo.Opt{kgo.SeedBrokers(s.cfg.Brokers...)}, s.cfg.Opts...)
}

// Write commits part's records in one transaction, unless a transaction
// of part's batch or a later one is committed already.
func (s *Sink[T]) Write(ctx context.Context, part engine.SinkPartition, records []T) error {
	if len(records) == 0 {
		return nil // nothing to commit, so nothing to repeat
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	sp, err := s.partition(ctx, part)
	if err != nil {
		return err
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.cl == nil {
		if err := s.reload(ctx, sp); err != nil {
			return err
		}
	}
	if sp.known && part.Time <= sp.last {
		return nil // committed by an earlier run of this batch
	}
	if err := s.commit(ctx, sp, part, records); err != nil {
		sp.cl.Close()
		sp.cl = nil // what was committed is unknown: read it again next time
		return fmt.Errorf("kafka: sink %s: %v: %w", sp.tid, part, err)
	}
	sp.last, sp.known = part.Time, true
	return nil
}

// commit writes records in one transaction of sp's producer.
func (s *Sink[T]) commit(ctx context.Context, sp *sinkPartition, part engine.SinkPartition, records []T) error {
	if err := sp.cl.BeginTransaction(); err != nil {
		return err
	}
	batch := []byte(strconv.FormatInt(int64(part.Time), 10))
	recs := make([]*kgo.Record, len(records))
	for i, r := range records {
		k, v := s.format(r)
		recs[i] = &kgo.Record{Topic: s.cfg.Topic, Key: k, Value: v, Headers: []kgo.RecordHeader{
			{Key: headerBatch, Value: batch}, {Key: headerTxn, Value: []byte(sp.tid)},
		}}
	}
	if err := sp.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		_ = sp.cl.EndTransaction(ctx, kgo.TryAbort)
		return err
	}
	return sp.cl.EndTransaction(ctx, kgo.TryCommit)
}

// partition returns part's producer. At the first Write it loads the
// producer of every partition, fencing all of them before it reads the
// output topic once: a transaction left open by one partition's dead
// producer would otherwise hold back the read of another's. It holds the
// sink's lock across that I/O on purpose: no partition may write before
// every one is fenced and the read is done.
func (s *Sink[T]) partition(ctx context.Context, part engine.SinkPartition) (*sinkPartition, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.parts == nil {
		parts := make([]*sinkPartition, part.Partitions)
		tids := make(map[string]bool)
		for i := range parts {
			parts[i] = &sinkPartition{tid: s.TransactionalID(i)}
			tids[parts[i].tid] = true
		}
		for _, sp := range parts {
			if err := s.open(ctx, sp); err != nil {
				closeAll(parts)
				return nil, err
			}
		}
		last, err := committedBatches(ctx, s.base(), s.cfg.Topic, tids)
		if err != nil {
			closeAll(parts)
			return nil, fmt.Errorf("kafka: sink: %w", err)
		}
		for _, sp := range parts {
			sp.last, sp.known = last[sp.tid], last[sp.tid] != 0
		}
		s.mu.parts = parts
	}
	if part.Partition < 0 || part.Partition >= len(s.mu.parts) {
		return nil, fmt.Errorf("kafka: sink: %v: the stream had %d partitions at the first write", part, len(s.mu.parts))
	}
	return s.mu.parts[part.Partition], nil
}

// open makes sp's producer and loads its producer id, which fences the
// older producers of its transactional id and ends their transactions.
func (s *Sink[T]) open(ctx context.Context, sp *sinkPartition) error {
	cl, err := kgo.NewClient(append(s.base(), kgo.TransactionalID(sp.tid), kgo.DefaultProduceTopic(s.cfg.Topic))...)
	if err != nil {
		return fmt.Errorf("kafka: sink %s: %w", sp.tid, err)
	}
	if _, _, err := cl.ProducerID(ctx); err != nil {
		cl.Close()
		return fmt.Errorf("kafka: sink %s: loading the producer id: %w", sp.tid, err)
	}
	sp.cl = cl
	return nil
}

// reload opens sp's producer again after a failure and reads what it
// committed.
func (s *Sink[T]) reload(ctx context.Context, sp *sinkPartition) error {
	if err := s.open(ctx, sp); err != nil {
		return err
	}
	last, err := committedBatches(ctx, s.base(), s.cfg.Topic, map[string]bool{sp.tid: true})
	if err != nil {
		sp.cl.Close()
		sp.cl = nil
		return fmt.Errorf("kafka: sink %s: %w", sp.tid, err)
	}
	sp.last, sp.known = last[sp.tid], last[sp.tid] != 0
	return nil
}

// Close closes the producers. A Write after it opens them again.
func (s *Sink[T]) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	closeAll(s.mu.parts)
	s.mu.parts = nil
}

func closeAll(parts []*sinkPartition) {
	for _, sp := range parts {
		sp.mu.Lock()
		if sp.cl != nil {
			sp.cl.Close()
			sp.cl = nil
		}
		sp.mu.Unlock()
	}
}
