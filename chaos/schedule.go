package chaos

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Fault is one planned fault. The plan comes from the seed alone: which
// node "leader" names is decided when the fault starts, by asking the
// cluster, and so is whatever the cluster does; the plan itself replays.
type Fault struct {
	Kind   string        `json:"kind"`
	At     time.Duration `json:"at_ns"`     // from the start of the load
	Length time.Duration `json:"length_ns"` // down, stopped, cut or jumped for this long
	// Leader: the fault hits the node that leads when it starts; else
	// node index Node (from 0).
	Leader bool `json:"leader"`
	Node   int  `json:"node"`
	// Mode of a partition: isolate (both ways), one-way (the node's own
	// connections cut, the others' to it kept) or flap (isolate and heal
	// every Flap).
	Mode string        `json:"mode,omitempty"`
	Flap time.Duration `json:"flap_ns,omitempty"`
	Jump time.Duration `json:"jump_ns,omitempty"` // of a clock fault, forward or back
}

// Partition modes.
const (
	PartitionIsolate = "isolate"
	PartitionOneWay  = "one-way"
	PartitionFlap    = "flap"
)

func (f Fault) String() string {
	target := fmt.Sprintf("n%d", f.Node+1)
	if f.Leader {
		target = "the leader"
	}
	switch f.Kind {
	case FaultKill:
		return fmt.Sprintf("SIGKILL %s, restart after %v", target, f.Length)
	case FaultPause:
		return fmt.Sprintf("SIGSTOP %s for %v", target, f.Length)
	case FaultPartition:
		s := fmt.Sprintf("partition %s %s for %v", f.Mode, target, f.Length)
		if f.Mode == PartitionFlap {
			s += fmt.Sprintf(", flapping every %v", f.Flap)
		}
		return s
	case FaultRestartAll:
		return fmt.Sprintf("SIGKILL every node, restart them all after %v", f.Length)
	case FaultClock:
		return fmt.Sprintf("jump %s's clock by %+v for %v", target, f.Jump, f.Length)
	}
	return f.Kind
}

// plan draws the faults of a run from its seed: one after another from
// Warmup to Duration-Cooldown, each followed by a quiet gap for the
// cluster to recover.
func plan(cfg Config) []Fault {
	if len(cfg.Faults) == 0 {
		return nil
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6368616f73)) // "chaos"
	between := func(lo, hi time.Duration) time.Duration {
		return lo + time.Duration(rng.Int64N(int64(hi-lo)/int64(100*time.Millisecond)+1))*100*time.Millisecond
	}
	var out []Fault
	end := cfg.Duration - cfg.Cooldown
	for at := cfg.Warmup; ; {
		f := Fault{Kind: cfg.Faults[rng.IntN(len(cfg.Faults))], At: at,
			Leader: rng.IntN(10) < 6, Node: rng.IntN(cfg.Nodes)}
		switch f.Kind {
		case FaultKill:
			f.Length = between(time.Second, 5*time.Second)
		case FaultPause:
			// Past raft's election timeout (500 ms) several times over.
			f.Length = between(2*time.Second, 5*time.Second)
		case FaultPartition:
			f.Length = between(3*time.Second, 8*time.Second)
			f.Mode = []string{PartitionIsolate, PartitionOneWay, PartitionFlap}[rng.IntN(3)]
			if f.Mode == PartitionFlap {
				f.Flap = between(500*time.Millisecond, 1500*time.Millisecond)
			}
		case FaultRestartAll:
			f.Length, f.Leader = between(500*time.Millisecond, 3*time.Second), false
		case FaultClock:
			f.Length = between(3*time.Second, 8*time.Second)
			f.Jump = between(time.Second, 5*time.Second)
			if rng.IntN(2) == 0 {
				f.Jump = -f.Jump
			}
		}
		if at+f.Length > end {
			return out
		}
		out = append(out, f)
		at += f.Length + between(4*time.Second, 8*time.Second)
	}
}
