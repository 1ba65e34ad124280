package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-stream/sluice/engine"
)

// Stream returns the records of cfg's topics, a record's value as a line.
// Every record is in exactly one batch, across crashes and restarts (see
// the package documentation). An unreachable cluster, a missing topic or
// refused credentials fail Receive: the engine reports the error on the
// receiver and retries with a backoff, and nothing is stored meanwhile.
// A cfg that does not Validate fails every Receive with its error; check
// it first.
func Stream(c *engine.Context, cfg Config) *engine.DStream[string] {
	return engine.ReceiverStream(c, cmp.Or(cfg.Name, "kafka"), &receiver{cfg: cfg})
}

// receiver reads every partition of the topics from its stored position.
type receiver struct {
	cfg Config
	ids map[string][16]byte // topic ids, for the group commits; set by Receive
}

var _ engine.Receiver = (*receiver)(nil)

// producerName is the metadata log's producer of one topic partition.
// Part of the stored format: positions are found by it after a restart.
func producerName(topic string, partition int32) string {
	return fmt.Sprintf("kafka/%s/%d", topic, partition)
}

func (r *receiver) Receive(ctx context.Context, out *engine.ReceiverOutput) error {
	if err := r.cfg.Validate(); err != nil {
		return err
	}
	parts, ids, err := r.partitions(ctx)
	if err != nil {
		return err
	}
	r.ids = ids
	offsets := make(map[string]map[int32]kgo.Offset)
	for topic, ps := range parts {
		offsets[topic] = make(map[int32]kgo.Offset)
		for _, p := range ps {
			offsets[topic][p] = r.startAt(out, topic, p)
		}
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(r.cfg.Brokers...),
		kgo.ConsumePartitions(offsets),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// A batch is a second or less: a fetch that waits its default 5 s
		// for data would hold records back from several batches.
		kgo.FetchMaxWait(500 * time.Millisecond),
	}, r.cfg.Opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err := fetchError(fetches); err != nil {
			return err
		}
		stored, err := r.store(ctx, out, fetches)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		r.commitToGroup(ctx, cl, out, stored)
	}
}

// startAt is where partition p of topic is read from: after what is
// stored, or at the configured start.
func (r *receiver) startAt(out *engine.ReceiverOutput, topic string, p int32) kgo.Offset {
	if pos, ok := out.Position(producerName(topic, p)); ok {
		return kgo.NewOffset().At(int64(pos))
	}
	if r.cfg.StartOffset == Latest {
		return kgo.NewOffset().AtEnd()
	}
	return kgo.NewOffset().AtStart()
}

// store stores each partition's run of records of a fetch as one block at
// the offset after its last record, and returns the partitions stored.
func (r *receiver) store(ctx context.Context, out *engine.ReceiverOutput, fetches kgo.Fetches) (map[string]map[int32]int64, error) {
	stored := make(map[string]map[int32]int64)
	var err error
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if err != nil || len(p.Records) == 0 {
			return
		}
		lines := make([]string, len(p.Records))
		for i, rec := range p.Records {
			lines[i] = string(rec.Value)
		}
		next := p.Records[len(p.Records)-1].Offset + 1
		if _, err = out.StoreAt(ctx, producerName(p.Topic, p.Partition), uint64(next), lines...); err != nil {
			err = fmt.Errorf("kafka: storing %s/%d up to offset %d: %w", p.Topic, p.Partition, next, err)
			return
		}
		if stored[p.Topic] == nil {
			stored[p.Topic] = make(map[int32]int64)
		}
		stored[p.Topic][p.Partition] = next
	})
	return stored, err
}

// fetchError returns the first error of a fetch that stops the receiver;
// the client retries the others itself.
func fetchError(fetches kgo.Fetches) error {
	for _, fe := range fetches.Errors() {
		if errors.Is(fe.Err, context.Canceled) || errors.Is(fe.Err, context.DeadlineExceeded) {
			continue
		}
		return fmt.Errorf("kafka: fetching %s/%d: %w", fe.Topic, fe.Partition, fe.Err)
	}
	return nil
}

// partitions returns the partitions of every topic, or an error that says
// which topic is missing or why the cluster did not answer.
func (r *receiver) partitions(ctx context.Context) (map[string][]int32, map[string][16]byte, error) {
	opts := append([]kgo.Opt{kgo.SeedBrokers(r.cfg.Brokers...)}, r.cfg.Opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	parts, ids, err := topicPartitions(ctx, cl, r.cfg.Topics, cmp.Or(r.cfg.Timeout, DefaultConfig().Timeout))
	if err != nil {
		return nil, nil, fmt.Errorf("%w (brokers %s)", err, strings.Join(r.cfg.Brokers, ","))
	}
	return parts, ids, nil
}

// topicPartitions asks the cluster for the partitions and ids of topics.
func topicPartitions(ctx context.Context, cl *kgo.Client, topics []string, timeout time.Duration) (map[string][]int32, map[string][16]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka: asking the brokers for the topics' metadata: %w", err)
	}
	parts, ids := make(map[string][]int32), make(map[string][16]byte)
	for _, t := range resp.Topics {
		name := ""
		if t.Topic != nil {
			name = *t.Topic
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return nil, nil, fmt.Errorf("kafka: topic %q: %w", name, err)
		}
		ids[name] = t.TopicID
		for _, p := range t.Partitions {
			parts[name] = append(parts[name], p.Partition)
		}
		slices.Sort(parts[name])
	}
	for _, t := range topics {
		if len(parts[t]) == 0 {
			return nil, nil, fmt.Errorf("kafka: topic %q: %w", t, kerr.UnknownTopicOrPartition)
		}
	}
	return parts, ids, nil
}

// commitToGroup mirrors stored offsets into the consumer group, as a
// standalone consumer does (generation -1), for visibility only: a
// failure is reported and changes nothing of what the stream reads.
func (r *receiver) commitToGroup(ctx context.Context, cl *kgo.Client, out *engine.ReceiverOutput, stored map[string]map[int32]int64) {
	if r.cfg.Group == "" || len(stored) == 0 {
		return
	}
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation = r.cfg.Group, -1
	for topic, ps := range stored {
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic, rt.TopicID = topic, r.ids[topic] // TopicID replaces Topic from v10
		for p, off := range ps {
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch = p, off, -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err == nil {
		err = firstCommitError(resp)
	}
	if err != nil && ctx.Err() == nil {
		out.ReportError(fmt.Errorf("kafka: committing stored offsets to group %q (for visibility only; the stream's positions are safe): %w", r.cfg.Group, err))
	}
}

func firstCommitError(resp *kmsg.OffsetCommitResponse) error {
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err)
			}
		}
	}
	return nil
}
