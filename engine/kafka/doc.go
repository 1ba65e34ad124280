// Package kafka reads from and writes to Apache Kafka, exactly once, with
// the franz-go client.
//
// # Reading: Stream
//
// Stream is a receiver over every partition of the configured topics. It
// does not join a consumer group to decide what it reads: it consumes
// each partition directly, at an offset it chose (kgo.ConsumePartitions),
// so that Kafka's rebalancing never moves what was read. Each fetched run
// of records of one partition is stored as one block with
// ReceiverOutput.StoreAt, under the producer "kafka/<topic>/<partition>"
// and the position "offset after the last record": the metadata log
// records the offsets with the block, atomically. At every (re)start the
// receiver seeks each partition to ReceiverOutput.Position, so what was
// stored is never read again and what was not is read again. A consumer
// group, when configured, only mirrors the stored offsets (committed after
// StoreAt returns) for tools that watch lag; it is never read back.
//
// # Writing: Sink
//
// Sink writes each (batch, partition) of a stream in one Kafka
// transaction of its own transactional producer, whose id is
// "sluice-<app>-<sink>-p<partition>". Every record carries the headers
// sluice-batch (the batch time in ms) and sluice-txn (the transactional
// id). On the first use of a partition in a process, the sink loads the
// producer id, which fences any older producer of that id and aborts the
// transaction it left open, and then reads the output topic with a
// read-committed consumer up to its last stable offset, keeping the
// highest sluice-batch among the records of that transactional id: a
// batch at or before it is committed already, and its re-run writes
// nothing. Batches run in order, so "at or before" is exact.
//
// # Concurrency
//
// Stream's receiver runs on the engine's receiver goroutine. Sink.Write is
// called concurrently for the partitions of one batch; each partition has
// its own producer, guarded by its own lock.
package kafka
