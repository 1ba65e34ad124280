package engine

import (
	"strings"
	"testing"
)

// TestBatchTasksRecordsEveryTask checks that a batch's tasks are kept per
// operator and partition, with the records of materialised outputs, and
// that an unknown batch time is not found.
func TestBatchTasksRecordsEveryTask(t *testing.T) {
	h := newHarness(t)
	words := FlatMap(QueueStream(h.c, NewQueue([]string{"a b", "c d e"}), true), strings.Fields)
	record(ReduceByKey(MapToPair(words, func(w string) (string, int) { return w, 1 }), func(a, b int) int { return a + b }))
	h.start()
	b := h.step()
	tasks, ok := h.c.BatchTasks(b.Time)
	if !ok || len(tasks) == 0 {
		t.Fatalf("BatchTasks(%v) = %v, %v: want the batch's tasks", b.Time, tasks, ok)
	}
	var records int64
	for _, ti := range tasks {
		if ti.Duration < 0 || ti.Start.IsZero() || ti.Error != "" {
			t.Errorf("task %+v: want a start, a duration and no error", ti)
		}
		if strings.HasSuffix(ti.Operator, "reduceByKey") && ti.Records > 0 {
			records += ti.Records
		}
	}
	if records != 5 {
		t.Errorf("reduceByKey's tasks produced %d records, want 5 (a b c d e)", records)
	}
	if _, ok := h.c.BatchTasks(b.Time + 1); ok {
		t.Errorf("BatchTasks of a time no batch had: found")
	}
}
