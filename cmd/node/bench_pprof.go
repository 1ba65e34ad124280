package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
)

// benchProfiles writes the profiles of a `node bench --pprof DIR` run:
// cpu.pprof over the whole run, allocs.pprof, mutex.pprof and block.pprof
// at its end, and latency.trace, an execution trace of the latency phase
// alone (where ack latency's tail comes from: GC, fsyncs, lock waits).
type benchProfiles struct {
	dir string
	cpu *os.File
	tr  *os.File
}

// startProfiles starts the CPU profile and the mutex and block sampling;
// a nil *benchProfiles (no --pprof) does nothing.
func startProfiles(dir string) (*benchProfiles, error) {
	if dir == "" {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--pprof: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "cpu.pprof"))
	if err != nil {
		return nil, fmt.Errorf("--pprof: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--pprof: %w", err)
	}
	runtime.SetMutexProfileFraction(100)
	runtime.SetBlockProfileRate(int(100_000)) // one sample per 100µs blocked
	return &benchProfiles{dir: dir, cpu: f}, nil
}

// startTrace starts the execution trace of the latency phase.
func (p *benchProfiles) startTrace() error {
	if p == nil {
		return nil
	}
	f, err := os.Create(filepath.Join(p.dir, "latency.trace"))
	if err != nil {
		return fmt.Errorf("--pprof: %w", err)
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return fmt.Errorf("--pprof: %w", err)
	}
	p.tr = f
	return nil
}

// stop stops the trace and the CPU profile and writes the others.
func (p *benchProfiles) stop() error {
	if p == nil {
		return nil
	}
	var errs []error
	if p.tr != nil {
		trace.Stop()
		errs = append(errs, p.tr.Close())
		p.tr = nil
	}
	pprof.StopCPUProfile()
	errs = append(errs, p.cpu.Close())
	for _, name := range []string{"allocs", "mutex", "block"} {
		f, err := os.Create(filepath.Join(p.dir, name+".pprof"))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, pprof.Lookup(name).WriteTo(f, 0), f.Close())
	}
	runtime.SetMutexProfileFraction(0)
	runtime.SetBlockProfileRate(0)
	return errors.Join(errs...)
}
