package engine

import "slices"

// partitionPrimary is the node that runs partition p's state tasks: the
// p-th (mod their number) of the live nodes in id order, this node always
// among them, the others unless lately failed (isDown). Every node holds
// a full replica of the state, so any of them can serve; the choice only
// spreads the partitions.
//
// The metadata log's PartitionAssigned event will fix the primaries; this
// body is then a read of the log's assignment.
func (n *clusterNode) partitionPrimary(p int) string {
	here := n.c.cfg.NodeID
	live := []string{here}
	for _, o := range n.others {
		if !n.isDown(o) {
			live = append(live, o)
		}
	}
	slices.Sort(live)
	return live[p%len(live)]
}
