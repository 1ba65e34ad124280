package engine

// partitionPrimary is the node that runs partition p's state tasks: its
// primary in the metadata log's assignment (PartitionAssigned, which the
// driver keeps in step with the nodes it reaches, cluster_assign.go), or
// this node, the driver, where there is no assignment yet or the primary
// has failed lately (isDown) and the log has not caught up with it. Every
// node holds a full replica of the state, so any of them can serve; the
// choice spreads the partitions, and a primary that cannot serve refuses
// and the driver computes the partition itself.
func (n *clusterNode) partitionPrimary(p int) string {
	here := n.c.cfg.NodeID
	a := n.meta().Partitions()
	if a == nil || len(a.Primaries) == 0 || p < 0 {
		return here
	}
	node := a.Primaries[p%len(a.Primaries)]
	if node != here && n.isDown(node) {
		return here
	}
	return node
}
