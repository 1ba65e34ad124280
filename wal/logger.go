package wal

import (
	"context"
	"fmt"
	"log/slog"
)

// pebbleLogger forwards Pebble's messages to slog: Infof at debug level
// (Pebble is chatty about flushes and WAL recycling), Errorf at warn level
// (the log's own error line, written once by fail, is the one to alert on).
//
// Fatalf must not return, by Pebble's contract: Pebble calls it when a
// commit's WAL write or sync fails and its commit pipeline is unusable.
// Instead of exiting the process, as Pebble's default does, it fails the
// log and panics with a *pebbleFatal, which the Log method on the same
// goroutine recovers into an error wrapping ErrFailed. A Fatalf on one of
// Pebble's background goroutines (a MANIFEST write failing under a flush)
// has no such method above it, and ends the process as Pebble would.
type pebbleLogger struct {
	log     *slog.Logger
	onFatal func(error) error
}

func (p *pebbleLogger) Infof(format string, args ...any) {
	if p.log.Enabled(context.Background(), slog.LevelDebug) {
		p.log.Debug(fmt.Sprintf(format, args...))
	}
}

func (p *pebbleLogger) Errorf(format string, args ...any) {
	p.log.Warn(fmt.Sprintf(format, args...))
}

func (p *pebbleLogger) Fatalf(format string, args ...any) {
	f := &pebbleFatal{msg: fmt.Sprintf(format, args...)}
	for _, a := range args {
		if err, ok := a.(error); ok {
			f.cause = err
			break
		}
	}
	p.onFatal(f)
	panic(f)
}
