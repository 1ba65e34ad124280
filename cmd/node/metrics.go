package main

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluice-stream/sluice/engine"
)

// metrics is the node's Prometheus registry: counters and histograms fed
// by the batch listener, and a collector that reads receivers, Raft, the
// WAL and state when scraped. Each node has its own registry (not the
// global one), so nodes in one process do not collide.
type metrics struct {
	reg        *prometheus.Registry
	completed  prometheus.Counter
	failed     prometheus.Counter
	records    prometheus.Counter
	scheduling prometheus.Histogram
	processing prometheus.Histogram
	total      prometheus.Histogram
	replayed   prometheus.Counter
}

// delayBuckets span a batch of a few words (100µs) to one a minute late.
var delayBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	histogram := func(name, help string) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: delayBuckets})
	}
	m.completed = counter("sluice_batches_completed_total", "Batches that completed.")
	m.failed = counter("sluice_batches_failed_total", "Batches that failed (a failed batch stops the job).")
	m.records = counter("sluice_input_records_total", "Input records of the batches that completed or failed.")
	m.replayed = counter("sluice_replayed_batches_total", "Batches allocated by an earlier driver and re-run by this one, after a restart or a failover.")
	m.scheduling = histogram("sluice_batch_scheduling_delay_seconds", "How long a batch waited for its turn, from its batch time's submission to its start.")
	m.processing = histogram("sluice_batch_processing_delay_seconds", "How long a batch ran.")
	m.total = histogram("sluice_batch_total_delay_seconds", "Scheduling delay plus processing time of a batch.")
	m.reg.MustRegister(m.completed, m.failed, m.records, m.replayed, m.scheduling, m.processing, m.total,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observeBatch(b engine.BatchInfo) {
	if b.Err != nil {
		m.failed.Inc()
	} else {
		m.completed.Inc()
	}
	m.records.Add(float64(b.Records))
	if !b.StartedAt.IsZero() {
		m.scheduling.Observe(b.SchedulingDelay().Seconds())
	}
	if !b.CompletedAt.IsZero() && !b.StartedAt.IsZero() {
		m.processing.Observe(b.ProcessingDelay().Seconds())
		m.total.Observe(b.TotalDelay().Seconds())
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// nodeCollector reads, at every scrape, what the engine keeps itself:
// receivers, Raft, the WAL's latency and the state store.
type nodeCollector struct{ s *status }

var (
	descReceiverRecords = prometheus.NewDesc("sluice_receiver_records_total", "Records a receiver stored durably.", []string{"stream"}, nil)
	descReceiverBlocks  = prometheus.NewDesc("sluice_receiver_blocks_total", "Blocks a receiver stored.", []string{"stream"}, nil)
	descReceiverErrors  = prometheus.NewDesc("sluice_receiver_errors_total", "Errors of a receiver (lost connections, dropped lines, failed stores).", []string{"stream"}, nil)
	descReceiverRate    = prometheus.NewDesc("sluice_receiver_rate_records_per_second", "Input records per second of a stream over the last batches.", []string{"stream"}, nil)
	descReceiverLimit   = prometheus.NewDesc("sluice_receiver_rate_limit_records_per_second", "A receiver's rate limit now (0: none).", []string{"stream"}, nil)
	descWALLatency      = prometheus.NewDesc("sluice_wal_sync_latency_seconds", "Latency of synced appends to the write-ahead log (write and fsync).", nil, nil)
	descWALSyncs        = prometheus.NewDesc("sluice_wal_syncs_total", "Fsyncs of the write-ahead log (fewer than appends under group commit).", nil, nil)
	descRaftState       = prometheus.NewDesc("sluice_raft_state", "1 for this node's Raft role in the metadata log, 0 for the others.", []string{"state"}, nil)
	descRaftTerm        = prometheus.NewDesc("sluice_raft_term", "Raft term of the metadata log: the driver's epoch.", nil, nil)
	descRaftLeader      = prometheus.NewDesc("sluice_raft_leader", "1 if this node is the leader (the driver), else 0.", nil, nil)
	descRaftCommit      = prometheus.NewDesc("sluice_raft_commit_index", "Raft commit index of the metadata log.", nil, nil)
	descRaftApplied     = prometheus.NewDesc("sluice_raft_applied_index", "Raft index last applied to the metadata log's state.", nil, nil)
	descLeaderChanges   = prometheus.NewDesc("sluice_raft_leader_changes_total", "Changes of leader seen by this node, its own election at start included.", nil, nil)
	descStateKeys       = prometheus.NewDesc("sluice_state_keys", "Keys held by a stateful operator.", []string{"operator", "kind"}, nil)
	descStateBytes      = prometheus.NewDesc("sluice_state_bytes", "Bytes on disk of a stateful operator's state.", []string{"operator", "kind"}, nil)
)

var raftStates = []string{engine.StateStarting, "Follower", "Candidate", "Leader", "Shutdown"}

func (nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descReceiverRecords, descReceiverBlocks, descReceiverErrors, descReceiverRate,
		descReceiverLimit, descWALLatency, descWALSyncs, descRaftState, descRaftTerm, descRaftLeader, descRaftCommit,
		descRaftApplied, descLeaderChanges, descStateKeys, descStateBytes} {
		ch <- d
	}
}

func (nc nodeCollector) Collect(ch chan<- prometheus.Metric) {
	s := nc.s
	rows := s.rows(true)
	for _, r := range s.c.Receivers() {
		ch <- prometheus.MustNewConstMetric(descReceiverRecords, prometheus.CounterValue, float64(r.Records), r.Stream)
		ch <- prometheus.MustNewConstMetric(descReceiverBlocks, prometheus.CounterValue, float64(r.Blocks), r.Stream)
		ch <- prometheus.MustNewConstMetric(descReceiverErrors, prometheus.CounterValue, float64(r.Errors), r.Stream)
		ch <- prometheus.MustNewConstMetric(descReceiverRate, prometheus.GaugeValue, inputRate(rows, r.Stream, s.c.Config().BatchDuration), r.Stream)
		ch <- prometheus.MustNewConstMetric(descReceiverLimit, prometheus.GaugeValue, r.RateLimit, r.Stream)
	}
	ci, _, changes := s.cluster.info()
	for _, st := range raftStates {
		ch <- prometheus.MustNewConstMetric(descRaftState, prometheus.GaugeValue, b2f(ci.State == st), st)
	}
	ch <- prometheus.MustNewConstMetric(descRaftTerm, prometheus.GaugeValue, float64(ci.Term))
	ch <- prometheus.MustNewConstMetric(descRaftLeader, prometheus.GaugeValue, b2f(ci.Leading()))
	ch <- prometheus.MustNewConstMetric(descRaftCommit, prometheus.GaugeValue, float64(ci.CommitIndex))
	ch <- prometheus.MustNewConstMetric(descRaftApplied, prometheus.GaugeValue, float64(ci.AppliedIndex))
	ch <- prometheus.MustNewConstMetric(descLeaderChanges, prometheus.CounterValue, float64(changes))
	if s.running.Load() {
		if l, ok := s.c.WALLatency(); ok {
			ch <- walHistogram(l)
			ch <- prometheus.MustNewConstMetric(descWALSyncs, prometheus.CounterValue, float64(l.Syncs))
		}
	}
	for _, r := range s.stateSummary() {
		ch <- prometheus.MustNewConstMetric(descStateKeys, prometheus.GaugeValue, float64(r.Keys), r.Name, r.Kind)
		ch <- prometheus.MustNewConstMetric(descStateBytes, prometheus.GaugeValue, float64(r.Bytes), r.Name, r.Kind)
	}
}

func walHistogram(l engine.WALLatency) prometheus.Metric {
	buckets := make(map[float64]uint64, len(l.Buckets))
	for i, b := range l.Buckets {
		buckets[b.Seconds()] = l.Counts[i]
	}
	return prometheus.MustNewConstHistogram(descWALLatency, l.Count, l.Sum.Seconds(), buckets)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
