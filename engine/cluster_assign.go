package engine

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/sluice-stream/sluice/recovery"
)

// State partitions' primaries and backups (ARCHITECTURE.md §4). The driver
// records in the metadata log, with PartitionAssigned, which node is each
// partition's primary and which its backup, when it takes over and
// whenever the nodes it reaches change: a lost node's partitions go to
// their backups, and each partition left without a backup gets one. A
// node that comes back is given partitions again, taken from the most
// loaded nodes, its backups first, so the primaries stay spread.
//
// The driver learns which nodes it reaches by asking each for its status
// every assignPing; a node that has not answered for assignLost is lost,
// one that answers is back.

const (
	assignPing = 500 * time.Millisecond
	assignLost = 1500 * time.Millisecond
)

// assignLoop keeps the log's assignment in step with the nodes the driver
// reaches, until ctx ends or the log refuses this driver's epoch.
func (n *clusterNode) assignLoop(ctx context.Context, epoch uint64) {
	here := n.c.cfg.NodeID
	heard := map[string]time.Time{here: time.Now()}
	for _, o := range n.others {
		heard[o] = time.Now() // each starts live: lost only after assignLost silent
	}
	tick := time.NewTicker(assignPing)
	defer tick.Stop()
	for {
		live := []string{here}
		for _, o := range n.others {
			if time.Since(heard[o]) < assignLost {
				live = append(live, o)
			}
		}
		slices.Sort(live)
		cur := n.meta().Partitions()
		prim, back := nextAssignment(cur, max(n.c.cfg.Partitions, 1), live)
		if cur == nil || !slices.Equal(cur.Primaries, prim) || !slices.Equal(cur.Backups, back) {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := n.meta().Apply(actx, recovery.PartitionAssigned{Epoch: epoch, Primaries: prim, Backups: back})
			cancel()
			switch {
			case errors.Is(err, recovery.ErrFenced), errors.Is(err, recovery.ErrNotLeader):
				return // a newer driver assigns
			case err != nil && ctx.Err() == nil:
				n.c.log.Warn("recording the partitions' primaries failed; trying again", "err", err)
			case err == nil:
				n.c.log.Info("partitions assigned", "epoch", epoch, "nodes", live, "primaries", prim, "backups", back)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, o := range n.others {
			pctx, cancel := context.WithTimeout(ctx, assignPing*3/5)
			var st NodeStatus
			if err := n.net.Call(pctx, o, methodStatus, nil, &st); err == nil {
				heard[o] = time.Now()
			}
			cancel()
		}
	}
}

// nextAssignment is the assignment of parts partitions over the live
// nodes (sorted) that follows prev (nil: none yet): a partition keeps a
// live primary, else its backup takes over if live, else the live node
// with the fewest primaries takes it (ties by id); a backup is kept while
// it is live and not the primary, else the live node with the fewest
// backups other than the primary, the next after it in id order first
// ("" with one node left). Then, while a
// node leads two partitions more than another, one moves: preferably one
// the lighter node backs up, which swaps the two roles. A function of its
// arguments only.
func nextAssignment(prev *recovery.PartitionAssigned, parts int, live []string) (prim, back []string) {
	isLive := make(map[string]bool, len(live))
	for _, id := range live {
		isLive[id] = true
	}
	prim, back = make([]string, parts), make([]string, parts)
	if prev != nil && len(prev.Primaries) == parts && len(prev.Backups) == parts {
		for p := range parts {
			switch pp, pb := prev.Primaries[p], prev.Backups[p]; {
			case isLive[pp]:
				prim[p], back[p] = pp, pb
			case isLive[pb]:
				prim[p] = pb
			}
		}
	}
	count := func(roles []string) map[string]int {
		c := make(map[string]int, len(live))
		for _, id := range roles {
			if isLive[id] {
				c[id]++
			}
		}
		return c
	}
	// fewest: the live node other than not with the lowest count, looking
	// from the node after not in id order round (ties to the first seen),
	// so that fresh backups follow their primaries around the ring.
	fewest := func(c map[string]int, not string) string {
		start := 0
		if i, ok := slices.BinarySearch(live, not); ok {
			start = i + 1
		}
		best := ""
		for k := range live {
			id := live[(start+k)%len(live)]
			if id != not && (best == "" || c[id] < c[best]) {
				best = id
			}
		}
		return best
	}
	led := count(prim)
	for p := range parts {
		if prim[p] == "" {
			prim[p] = fewest(led, "")
			led[prim[p]]++
		}
	}
	for {
		most, least := live[0], live[0]
		for _, id := range live {
			if led[id] > led[most] {
				most = id
			}
			if led[id] < led[least] {
				least = id
			}
		}
		if led[most]-led[least] < 2 {
			break
		}
		move := -1
		for p := range parts {
			if prim[p] == most && (move < 0 || back[p] == least && back[move] != least) {
				move = p
			}
		}
		if back[move] == least {
			back[move] = most
		}
		prim[move] = least
		led[most]--
		led[least]++
	}
	backed := count(back)
	for p := range parts {
		if b := back[p]; b == prim[p] || !isLive[b] {
			if b != "" && isLive[b] {
				backed[b]--
			}
			back[p] = fewest(backed, prim[p])
			if back[p] != "" {
				backed[back[p]]++
			}
		}
	}
	return prim, back
}

// partitionRoles counts the partitions node leads and backs up in the
// log's assignment.
func partitionRoles(a *recovery.PartitionAssigned, node string) (led, backed int) {
	if a == nil {
		return 0, 0
	}
	for p := range a.Primaries {
		if a.Primaries[p] == node {
			led++
		}
		if a.Backups[p] == node {
			backed++
		}
	}
	return led, backed
}

// PartitionRoles counts the state partitions node is primary and backup
// of in the metadata log's assignment; ok is false before the first
// assignment (and on a single node, which records none).
func (c *Context) PartitionRoles(node string) (led, backed int, ok bool) {
	c.mu.Lock()
	n := c.node
	c.mu.Unlock()
	if n == nil || c.storage == nil || c.storage.meta == nil {
		return 0, 0, false
	}
	a := n.meta().Partitions()
	if a == nil {
		return 0, 0, false
	}
	led, backed = partitionRoles(a, node)
	return led, backed, true
}
