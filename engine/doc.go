// Package engine is Sluice's public API and its batch engine: the
// Context, DStreams and their operators, input sources, output
// operations, listeners, and the scheduler that runs a graph one batch at
// a time (Spark Streaming's DStream model).
//
// # Writing an application
//
//  1. Make a Context with a batch duration (NewContext, Config).
//  2. Make input streams (ReceiverStream, SocketTextStream,
//     TextFileStream, QueueStream) and build a graph of operators on
//     them. Operators that keep the element type are methods (Filter,
//     Window, Union, Count); those that change it are generic functions
//     (Map, FlatMap, ReduceByKey, UpdateStateByKey), since Go methods
//     cannot have type parameters.
//  3. Register at least one output operation (Print, SaveAsTextFiles,
//     ForeachRDD, ForeachSink).
//  4. Start, then AwaitTermination; Stop (gracefully, to finish what was
//     received) to end.
//
// # How a batch runs
//
//  1. At batch time t (a multiple of BatchDuration since the Unix epoch)
//     the scheduler allocates the batch: BatchAllocated in the metadata
//     log gives it every block that receivers stored and registered since
//     the previous batch; in-memory inputs (queues) give it
//     their data. What a batch holds is never decided again: a batch
//     re-run after a crash reads the same blocks.
//  2. Stateful operators and the parents of windows are computed at
//     every time they are valid, then every output operation valid at t
//     runs, in registration order.
//  3. Within an operator, each partition is a task; tasks run in
//     parallel (Config.Parallelism). Narrow operators (Map, Filter, ...)
//     are pipelined inside one task. Key-partitioned operators shuffle
//     by a stable hash of the key into Config.Partitions partitions,
//     combining on the map side where the operator allows.
//  4. When every output has run, the batch commits: the state it changed
//     (and the data windows keep) is written as its delta to the state
//     store (package state), synced; now and then a checkpoint of the
//     whole state is written (package checkpoint); BatchCompleted is
//     recorded with the checkpoint's reference; then the delta is applied
//     and becomes what readers and the next batch see. A failed batch
//     drops its writes and stops the context, since every later batch of
//     a stateful operator depends on it. At start, the state store is
//     brought in line with the metadata log (deltas redone or dropped, or
//     the store rebuilt from a referenced checkpoint and the batches
//     after it re-run).
//
// Batches run one after another, in time order.
//
// # Determinism
//
// A re-run of a batch must produce the same records in the same order:
// a batch reads its input in allocation order; a shuffle merges map
// outputs in map-task order, never in arrival order; keyed results are
// ordered by first appearance, never by Go's map iteration; windows and
// state timeouts are measured in batch time, never by the wall clock.
// User functions must be deterministic too.
//
// # Concurrency
//
// Build the graph from one goroutine before Start. Once started, the
// scheduler owns the graph: one goroutine generates batches, one runs
// them, and tasks run on goroutines of their own. User functions passed
// to operators may run concurrently for different partitions and must
// not share unguarded state. Functions passed to Transform and ForeachRDD
// run on the scheduler's goroutine, one batch at a time. Listeners are
// called in order from one goroutine.
package engine
