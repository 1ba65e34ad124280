package chaos

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Event is a fault as it happened: what, on which node, when.
type Event struct {
	Fault  Fault     `json:"fault"`
	Target string    `json:"target"` // the node hit (all: every node)
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	Note   string    `json:"note,omitempty"`
}

// nemesis runs the planned faults against the cluster, one after
// another, and heals everything at the end of the fault phase.
type nemesis struct {
	c   *cluster
	mon *monitor
	mu  sync.Mutex
	evs []Event
}

// run executes plan from start; it returns when the last fault has ended
// and everything is healed, or with the error of a node that would not
// restart.
func (ns *nemesis) run(ctx context.Context, start time.Time, faults []Fault) error {
	for _, f := range faults {
		if err := sleepCtx(ctx, time.Until(start.Add(f.At))); err != nil {
			return nil
		}
		ev := Event{Fault: f, Start: time.Now()}
		ns.c.logf("fault at %v: %v", time.Since(start).Round(100*time.Millisecond), f)
		err := ns.inject(ctx, f, &ev)
		ev.End = time.Now()
		ns.mu.Lock()
		ns.evs = append(ns.evs, ev)
		ns.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

func (ns *nemesis) events() []Event {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return append([]Event{}, ns.evs...)
}

// target resolves a fault's node: the leader when it asks for it and one
// is known, else node f.Node.
func (ns *nemesis) target(ctx context.Context, f Fault) *node {
	if f.Leader {
		if l := ns.c.leader(ctx); l != nil {
			return l
		}
	}
	return ns.c.nodes[f.Node]
}

func (ns *nemesis) inject(ctx context.Context, f Fault, ev *Event) error {
	switch f.Kind {
	case FaultRestartAll:
		return ns.restartAll(ctx, f, ev)
	case FaultPartition:
		return ns.partition(ctx, f, ev)
	}
	n := ns.target(ctx, f)
	ev.Target = n.id
	driver, _ := ns.mon.driver()
	switch f.Kind {
	case FaultKill:
		ns.timeFailover(f, n, driver)
		n.kill()
		sleepCtx(ctx, f.Length)
		if err := ns.c.restart(ctx, n); err != nil && ctx.Err() == nil {
			return fmt.Errorf("%w: %s would not restart after SIGKILL: %v", ErrNodeStart, n.id, err)
		}
	case FaultPause:
		ns.timeFailover(f, n, driver)
		n.signal(syscall.SIGSTOP)
		sleepCtx(ctx, f.Length)
		n.signal(syscall.SIGCONT)
	case FaultClock:
		if err := ns.c.post(ctx, n, "/debug/clock?jump="+f.Jump.String()); err != nil {
			ev.Note = "the jump failed: " + err.Error()
			return nil
		}
		sleepCtx(ctx, f.Length)
		if err := ns.c.post(context.Background(), n, "/debug/clock?jump="+(-f.Jump).String()); err != nil {
			ev.Note = "the jump back failed (the node restarted since? its clock then starts true): " + err.Error()
		}
	}
	return nil
}

// timeFailover asks the monitor to time the failover when the fault
// takes away the node that drives: on a cluster, until another node
// drives; on a single node, until it drives again.
func (ns *nemesis) timeFailover(f Fault, n *node, driver string) {
	if driver == n.id {
		ns.mon.expectFailover(f.String(), n.id, time.Now(), len(ns.c.nodes) > 1)
	}
}

func (ns *nemesis) restartAll(ctx context.Context, f Fault, ev *Event) error {
	ev.Target = "all"
	driver, _ := ns.mon.driver()
	ns.mon.expectFailover(f.String(), driver, time.Now(), false)
	ns.c.killAll()
	sleepCtx(ctx, f.Length)
	if err := ns.c.startNodes(ctx, ns.c.nodes); err != nil && ctx.Err() == nil {
		return fmt.Errorf("%w: restarting every node: %v", ErrNodeStart, err)
	}
	return nil
}

// partition cuts links through the proxies, or with Docker by
// disconnecting the node from the run's network. isolate: neither the node
// nor the others can open or keep a connection between them. one-way:
// the node's own connections to the others are cut, theirs to it kept.
// flap: isolate and heal, every f.Flap, for f.Length.
func (ns *nemesis) partition(ctx context.Context, f Fault, ev *Event) error {
	n := ns.target(ctx, f)
	ev.Target = n.id
	driver, _ := ns.mon.driver()
	if f.Mode != PartitionFlap {
		ns.timeFailover(f, n, driver)
	}
	cut := func() {
		if note := ns.c.isolate(n, f.Mode == PartitionOneWay); note != "" {
			ev.Note = note
		}
	}
	defer ns.c.healLinks()
	if f.Mode != PartitionFlap {
		cut()
		sleepCtx(ctx, f.Length)
		return nil
	}
	var flips []string
	end := time.Now().Add(f.Length)
	for on := true; time.Now().Before(end) && ctx.Err() == nil; on = !on {
		if on {
			cut()
		} else {
			ns.c.healLinks()
		}
		flips = append(flips, map[bool]string{true: "cut", false: "heal"}[on])
		sleepCtx(ctx, min(f.Flap, time.Until(end)))
	}
	ev.Note = strings.Join(flips, ",")
	return nil
}

// healAll ends every fault: links healed, stopped nodes resumed, dead
// ones restarted, clocks set back to the system time.
func (ns *nemesis) healAll(ctx context.Context) error {
	if err := ns.c.healLinks(); err != nil {
		return fmt.Errorf("%w: reconnecting the nodes: %v", ErrNodeStart, err)
	}
	var dead []*node
	for _, n := range ns.c.nodes {
		n.signal(syscall.SIGCONT)
		if !n.running() {
			dead = append(dead, n)
		}
	}
	for _, n := range dead {
		if err := ns.c.restart(ctx, n); err != nil {
			return fmt.Errorf("%w: %s would not restart at the end of the faults: %v", ErrNodeStart, n.id, err)
		}
	}
	if !hasFault(ns.c.cfg.Faults, FaultClock) {
		return nil
	}
	for _, n := range ns.c.nodes {
		var doc struct {
			Offset int64 `json:"offset_ms"`
		}
		if err := ns.c.postJSON(ctx, n, "/debug/clock?jump=0s", &doc); err == nil && doc.Offset != 0 {
			ns.c.post(ctx, n, fmt.Sprintf("/debug/clock?jump=%dms", -doc.Offset))
		}
	}
	return nil
}
