package engine

import (
	"fmt"
	"runtime/debug"
	"sync"
)

// TaskError is the failure of one task: a user function that panicked or
// returned an error while computing a partition of an operator's output at
// a batch time. It carries the stack of the panic, so the log and the
// listener show where user code failed.
//
// Narrow operators are pipelined into the task of the operator that
// consumes them, so Operator names that task's operator; the stack shows
// which function failed.
type TaskError struct {
	Time      Time
	Operator  string // "#id kind", with the operator's name if it has one
	Partition int    // -1 for driver-side work such as an output function
	Panic     any    // the recovered value, nil if Err is set
	Err       error
	Stack     string
}

func (e *TaskError) Error() string {
	where := fmt.Sprintf("batch %v, operator %s", e.Time, e.Operator)
	if e.Partition >= 0 {
		where += fmt.Sprintf(", partition %d", e.Partition)
	}
	if e.Err != nil {
		return "engine: " + where + ": " + e.Err.Error()
	}
	return fmt.Sprintf("engine: %s: panic: %v", where, e.Panic)
}

func (e *TaskError) Unwrap() error { return e.Err }

// executor runs the tasks of one stage in parallel, one goroutine per task,
// at most `parallelism` at a time. Records are never handed between
// goroutines one by one: a task owns a whole partition.
type executor struct {
	sem   chan struct{}
	trace taskTrace // the last batches' tasks, for BatchTasks (task_trace.go)
}

func newExecutor(parallelism int) *executor {
	return &executor{sem: make(chan struct{}, parallelism)}
}

// run calls fn(p) for every p in [0, n) and waits for all of them. If any
// task fails, the error of the lowest failing partition is returned, so
// the reported failure does not depend on scheduling.
func (x *executor) run(t Time, op string, n int, fn func(p int)) error {
	return x.runE(t, op, n, func(p int) error { fn(p); return nil })
}

// runE is run for tasks that can fail with an error as well as a panic.
func (x *executor) runE(t Time, op string, n int, fn func(p int) error) error {
	if n == 1 {
		return x.task(t, op, 0, func() error { return fn(0) })
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for p := 0; p < n; p++ {
		x.sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-x.sem; wg.Done() }()
			errs[p] = x.task(t, op, p, func() error { return fn(p) })
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// guard runs fn and turns a panic or error into a *TaskError.
func guard(t Time, op string, partition int, fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &TaskError{Time: t, Operator: op, Partition: partition, Panic: r, Stack: string(debug.Stack())}
		}
	}()
	if ferr := fn(); ferr != nil {
		if te, ok := ferr.(*TaskError); ok {
			return te
		}
		return &TaskError{Time: t, Operator: op, Partition: partition, Err: ferr}
	}
	return nil
}

// materialize computes every partition of r in parallel.
func materialize[T any](b *batchRun, op string, r *rdd[T]) (*rdd[T], error) {
	if r.mat != nil || r.n == 0 {
		return r, nil
	}
	parts := make([][]T, r.n)
	err := b.exec.run(b.t, op, r.n, func(p int) {
		var out []T
		r.iterate(p, func(v T) { out = append(out, v) })
		parts[p] = out
	})
	if err != nil {
		return nil, err
	}
	traceRecords(b, op, parts)
	return materialized(parts), nil
}
