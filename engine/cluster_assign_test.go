package engine

import (
	"slices"
	"testing"
	"time"

	"github.com/sluice-stream/sluice/recovery"
)

// checkAssignment checks what every assignment must be: a live primary
// per partition, a live backup other than it (none with one node), and
// the primaries spread within one partition of each other.
func checkAssignment(t *testing.T, prim, back, live []string) {
	t.Helper()
	led := map[string]int{}
	for p := range prim {
		if !slices.Contains(live, prim[p]) {
			t.Fatalf("partition %d: primary %q is not live (%v)", p, prim[p], live)
		}
		switch {
		case len(live) == 1 && back[p] != "":
			t.Fatalf("partition %d: backup %q with one node", p, back[p])
		case len(live) > 1 && (!slices.Contains(live, back[p]) || back[p] == prim[p]):
			t.Fatalf("partition %d: backup %q (primary %q, live %v)", p, back[p], prim[p], live)
		}
		led[prim[p]]++
	}
	lo, hi := len(prim), 0
	for _, id := range live {
		lo, hi = min(lo, led[id]), max(hi, led[id])
	}
	if hi-lo > 1 {
		t.Fatalf("primaries not spread: %v over %v", led, live)
	}
}

func TestNextAssignment(t *testing.T) {
	three := []string{"n1", "n2", "n3"}
	prim, back := nextAssignment(nil, 6, three)
	checkAssignment(t, prim, back, three)
	if p2, b2 := nextAssignment(nil, 6, three); !slices.Equal(prim, p2) || !slices.Equal(back, b2) {
		t.Fatal("the same arguments gave another assignment")
	}
	prev := &recovery.PartitionAssigned{Primaries: prim, Backups: back}
	if p2, b2 := nextAssignment(prev, 6, three); !slices.Equal(prim, p2) || !slices.Equal(back, b2) {
		t.Fatalf("nothing changed, yet the assignment did: %v/%v, then %v/%v", prim, back, p2, b2)
	}

	// n2 is lost: its partitions go to their backups; to spread the
	// primaries again, a partition may swap its primary and backup.
	two := []string{"n1", "n3"}
	lp, lb := nextAssignment(prev, 6, two)
	checkAssignment(t, lp, lb, two)
	for p := range prim {
		if prim[p] == "n2" && lp[p] != back[p] {
			t.Errorf("partition %d: n2's backup %s should lead it, %s does", p, back[p], lp[p])
		}
		if prim[p] != "n2" && lp[p] != prim[p] && lp[p] != back[p] {
			t.Errorf("partition %d: led by %s, backed by %s, then by %s: a move for balance goes to the backup", p, prim[p], back[p], lp[p])
		}
	}

	// n2 comes back: it leads its share again.
	rp, rb := nextAssignment(&recovery.PartitionAssigned{Primaries: lp, Backups: lb}, 6, three)
	checkAssignment(t, rp, rb, three)

	// One node left, then none of the old ones.
	op, ob := nextAssignment(&recovery.PartitionAssigned{Primaries: rp, Backups: rb}, 6, []string{"n3"})
	checkAssignment(t, op, ob, []string{"n3"})
	np, nb := nextAssignment(&recovery.PartitionAssigned{Primaries: op, Backups: ob}, 6, []string{"n4", "n5"})
	checkAssignment(t, np, nb, []string{"n4", "n5"})

	// Another partition count than the previous assignment's: from scratch.
	xp, xb := nextAssignment(prev, 4, three)
	checkAssignment(t, xp, xb, three)
}

// In the simulated cluster the driver records an assignment over the
// three nodes; when one dies its partitions go to their backups, and when
// it returns it leads again.
func TestPartitionsFollowTheNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a simulated cluster for seconds")
	}
	s := newSim(t, 79)
	defer s.close()
	waitFor := func(what string, ok func(a *recovery.PartitionAssigned) bool) *recovery.PartitionAssigned {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			if l := s.leader(); l != nil {
				if a := l.ctx.node.meta().Partitions(); a != nil && ok(a) {
					return a
				}
			}
			if time.Now().After(deadline) {
				var a *recovery.PartitionAssigned
				if l := s.leader(); l != nil {
					a = l.ctx.node.meta().Partitions()
				}
				t.Fatalf("%s: never; the log's assignment is %+v", what, a)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	leads := func(a *recovery.PartitionAssigned, id string) bool { return slices.Contains(a.Primaries, id) }
	all := waitFor("every node leads a partition", func(a *recovery.PartitionAssigned) bool {
		return leads(a, "n1") && leads(a, "n2") && leads(a, "n3")
	})
	l := s.leader()
	var victim *simNode
	for _, n := range s.nodes {
		if n != l {
			victim = n
			break
		}
	}
	s.crash(victim)
	lost := waitFor(victim.id+" is lost", func(a *recovery.PartitionAssigned) bool {
		return !leads(a, victim.id) && !slices.Contains(a.Backups, victim.id)
	})
	for p := range all.Primaries {
		if all.Primaries[p] == victim.id && lost.Primaries[p] != all.Backups[p] {
			t.Errorf("partition %d: %s's backup %s should lead it, %s does", p, victim.id, all.Backups[p], lost.Primaries[p])
		}
	}
	// The others answer the same in /api/cluster's terms.
	if led, _, ok := l.ctx.PartitionRoles(victim.id); !ok || led != 0 {
		t.Errorf("PartitionRoles(%s) = %d, %v after it died", victim.id, led, ok)
	}
	s.start(victim)
	waitFor(victim.id+" leads again", func(a *recovery.PartitionAssigned) bool { return leads(a, victim.id) })
	s.loadFor(0, 300*time.Millisecond)
	s.settle()
	s.check()
	t.Logf("assignments: %v/%v, then %v/%v", all.Primaries, all.Backups, lost.Primaries, lost.Backups)
}
