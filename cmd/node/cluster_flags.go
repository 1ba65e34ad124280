package main

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/sluice-stream/sluice/engine/rpc"
	"github.com/sluice-stream/sluice/recovery"
)

// cluster parses --peers (and checks --raft, --replication and
// --data-dir against it): nil for a single node.
func (f *nodeFlags) cluster() ([]recovery.Peer, error) {
	if f.peers == "" {
		if f.raftAddr != "" || f.replication != 0 {
			return nil, errors.New("--raft and --replication are for a cluster: give --peers too (ID=HOST:PORT for every node, this one included)")
		}
		return nil, nil
	}
	var peers []recovery.Peer
	ids, addrs := map[string]bool{}, map[string]bool{}
	for _, item := range strings.Split(f.peers, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("--peers: %q is not ID=HOST:PORT", item)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("--peers: %s's address %q: %v", id, addr, err)
		}
		if ids[id] {
			return nil, fmt.Errorf("--peers: node id %s is listed twice; every node needs its own id", id)
		}
		if addrs[addr] {
			return nil, fmt.Errorf("--peers: address %s is listed twice; every node needs its own --raft address", addr)
		}
		ids[id], addrs[addr] = true, true
		peers = append(peers, recovery.Peer{ID: id, Address: addr})
	}
	self := f.selfPeer(peers)
	switch {
	case self == nil:
		return nil, fmt.Errorf("--peers does not list this node's --id %s: list every node, this one included", f.nodeID)
	case f.raftAddr != "" && !validHostPort(f.raftAddr):
		return nil, fmt.Errorf("--raft %q is not HOST:PORT", f.raftAddr)
	case f.dataDir == "":
		return nil, errors.New("a cluster node needs --data-dir: its logs and state must survive a restart for the others to trust it")
	case f.replication < 0 || f.replication > len(peers):
		return nil, fmt.Errorf("--replication %d must be between 1 and the %d nodes (0: 2)", f.replication, len(peers))
	}
	return peers, nil
}

func validHostPort(addr string) bool {
	_, _, err := net.SplitHostPort(addr)
	return err == nil
}

func (f *nodeFlags) selfPeer(peers []recovery.Peer) *recovery.Peer {
	for i := range peers {
		if peers[i].ID == f.nodeID {
			return &peers[i]
		}
	}
	return nil
}

// listenCluster opens this node's port for raft and the other nodes.
func listenCluster(f *nodeFlags, peers []recovery.Peer, log *slog.Logger) (*rpc.TCP, error) {
	addrs := make(map[string]string, len(peers))
	for _, p := range peers {
		addrs[p.ID] = p.Address
	}
	self := f.selfPeer(peers)
	// --raft is where the node listens; its --peers entry is where the
	// others dial it. They differ behind a proxy (chaos puts one in front
	// of every node to cut links) or a NAT.
	bind := cmp.Or(f.raftAddr, self.Address)
	ep, err := rpc.Listen(self.ID, bind, addrs, rpc.Options{Logger: log.With("component", "rpc"), Advertise: self.Address})
	if err != nil {
		return nil, fmt.Errorf("--raft %s: %w (is another node running there? give each node its own address)", bind, err)
	}
	return ep, nil
}

func closeEndpoint(ep *rpc.TCP) {
	if ep != nil {
		ep.Close()
	}
}
