package kafka

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-stream/sluice/engine"
)

// Record headers the sink writes. Part of the output format: a restarted
// sink reads them back to learn what it committed.
const (
	headerBatch = "sluice-batch" // the batch time, decimal milliseconds since the Unix epoch
	headerTxn   = "sluice-txn"   // the transactional id that wrote the record
)

// committedBatches reads topic with a read-committed consumer and returns,
// for each of tids, the latest batch time among its committed records.
//
// Call it only after loading the producer id of every one of tids: that
// fences their older producers and ends the transactions they left open.
// The end of the topic is fixed then (the high watermarks); the read waits
// until no transaction open below that end remains (the last stable offset
// reaches it), so that no record committed before is missed, and reads up
// to it. It reads the whole topic: its cost grows with the topic, once
// per start of the sink (see the package documentation).
func committedBatches(ctx context.Context, base []kgo.Opt, topic string, tids map[string]bool) (map[string]engine.Time, error) {
	last := make(map[string]engine.Time)
	err := readCommitted(ctx, base, topic, func(r *kgo.Record) {
		if t, tid, ok := batchOf(r); ok && tids[tid] && t > last[tid] {
			last[tid] = t
		}
	})
	return last, err
}

// readCommitted calls fn with every committed record of topic, partition
// by partition in offset order, up to the topic's end as of the call,
// once no transaction open below that end remains.
func readCommitted(ctx context.Context, base []kgo.Opt, topic string, fn func(*kgo.Record)) error {
	cl, err := kgo.NewClient(base...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	parts, _, err := topicPartitions(ctx, cl, []string{topic}, time.Minute)
	if err != nil {
		return err
	}
	ends, err := stableEnds(ctx, cl, topic, parts[topic])
	if err != nil {
		return err
	}
	offsets := map[int32]kgo.Offset{}
	for p, end := range ends {
		if end > 0 {
			offsets[p] = kgo.NewOffset().AtStart()
		}
	}
	if len(offsets) == 0 {
		return nil
	}
	rd, err := kgo.NewClient(append(slices.Clip(base),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), // a transaction's last offset is its marker: without it, where a partition ends is unseen
	)...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer rd.Close()
	pos := make(map[int32]int64)
	for done := 0; done < len(offsets); {
		fetches := rd.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("kafka: reading %s: %w", topic, err)
		}
		if err := fetchError(fetches); err != nil {
			return err
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Offset >= ends[r.Partition] || pos[r.Partition] >= ends[r.Partition] {
				return
			}
			pos[r.Partition] = r.Offset + 1
			if pos[r.Partition] >= ends[r.Partition] {
				done++
			}
			if !r.Attrs.IsControl() {
				fn(r)
			}
		})
	}
	return nil
}

// batchOf reads the sink's headers of a record.
func batchOf(r *kgo.Record) (engine.Time, string, bool) {
	var tid, batch string
	for _, h := range r.Headers {
		switch h.Key {
		case headerBatch:
			batch = string(h.Value)
		case headerTxn:
			tid = string(h.Value)
		}
	}
	ms, err := strconv.ParseInt(batch, 10, 64)
	if err != nil || tid == "" || r.Attrs.IsControl() {
		return 0, "", false
	}
	return engine.Time(ms), tid, true
}

// stableEnds returns each partition's high watermark, once the last
// stable offset has reached it.
func stableEnds(ctx context.Context, cl *kgo.Client, topic string, parts []int32) (map[int32]int64, error) {
	ends, err := listEnds(ctx, cl, topic, parts, 0)
	if err != nil {
		return nil, err
	}
	for {
		stable, err := listEnds(ctx, cl, topic, parts, 1)
		if err != nil {
			return nil, err
		}
		behind := false
		for p, end := range ends {
			behind = behind || stable[p] < end
		}
		if !behind {
			return ends, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("kafka: waiting for the open transactions of %s to end: %w", topic, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// listEnds lists the end offsets of partitions: the high watermarks for
// isolation 0, the last stable offsets for 1.
func listEnds(ctx context.Context, cl *kgo.Client, topic string, parts []int32, isolation int8) (map[int32]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID, req.IsolationLevel = -1, isolation
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for _, p := range parts {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = p, -1, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	ends := make(map[int32]int64)
	for _, shard := range cl.RequestSharded(ctx, req) {
		if shard.Err != nil {
			return nil, fmt.Errorf("kafka: listing the offsets of %s: %w", topic, shard.Err)
		}
		for _, t := range shard.Resp.(*kmsg.ListOffsetsResponse).Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return nil, fmt.Errorf("kafka: listing the offsets of %s/%d: %w", topic, p.Partition, err)
				}
				ends[p.Partition] = p.Offset
			}
		}
	}
	return ends, nil
}
