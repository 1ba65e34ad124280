package recovery

// Queries that read the FSM without copying it, for the hot paths of the
// engine (every ingest request asks ProducerSeen).

// ProducerSeen is View().ProducerSeen without copying the state: seen is
// true when (producer, seq) is stored; reason is set when a BlockAdded
// holding it would be Rejected.
func (l *Log) ProducerSeen(producer string, seq uint64) (seen bool, reason string) {
	return l.fsm.producerSeen(producer, seq)
}

// LastBlock returns the highest block sequence ever added for (stream,
// node), truncated or not: a receiver restarting must number its blocks
// after it, since the FSM ignores a block sequence it has seen.
func (l *Log) LastBlock(stream, node string) (seq uint64, ok bool) {
	return l.fsm.lastBlock(stream, node)
}

func (f *fsm) producerSeen(producer string, seq uint64) (bool, string) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return seenIn(f.mu.st.producers[producer], producer, seq)
}

func (f *fsm) lastBlock(stream, node string) (uint64, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.mu.st.blocks[source{Stream: stream, Node: node}].max()
}

// ProducerPosition returns the highest sequence stored for producer, and
// false if none: where a source that numbers its records (a Kafka
// partition's offsets, a file's chunks) resumes after a restart.
func (l *Log) ProducerPosition(producer string) (seq uint64, ok bool) {
	return l.fsm.producerMax(producer)
}

func (f *fsm) producerMax(producer string) (uint64, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.mu.st.producers[producer].max()
}

// Checkpoints is View().Checkpoints without copying the rest of the
// state: the references the log keeps, oldest first.
func (l *Log) Checkpoints() []CheckpointRef {
	l.fsm.mu.RLock()
	defer l.fsm.mu.RUnlock()
	return append([]CheckpointRef(nil), l.fsm.mu.st.checkpoints...)
}

// Fingerprint is View().Fingerprint without copying the rest of the
// state; nil if no graph was recorded.
func (l *Log) Fingerprint() *FingerprintSet {
	l.fsm.mu.RLock()
	defer l.fsm.mu.RUnlock()
	if l.fsm.mu.st.fingerprint == nil {
		return nil
	}
	fp := *l.fsm.mu.st.fingerprint
	fp.Operators = append([]string(nil), fp.Operators...)
	return &fp
}

// Partitions is View().Partitions without copying the rest of the state:
// the newest PartitionAssigned, nil if none.
func (l *Log) Partitions() *PartitionAssigned {
	l.fsm.mu.RLock()
	defer l.fsm.mu.RUnlock()
	if l.fsm.mu.st.partitions == nil {
		return nil
	}
	a := clonePartitions(*l.fsm.mu.st.partitions)
	return &a
}
