package recovery

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// The cluster side of the log: leadership, terms and membership, for the
// engine's driver (which runs on the leader only) and for status pages.

// checkPeers refuses a store whose voters differ from Config.Peers: a node
// started with another cluster's data directory, or with a --peers that
// disagrees with the cluster it bootstrapped.
func (l *Log) checkPeers() error {
	f := l.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("recovery: read raft configuration: %w", err)
	}
	var stored, given []string
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			stored = append(stored, string(s.ID)+"="+string(s.Address))
		}
	}
	for _, p := range l.cfg.Peers {
		given = append(given, p.ID+"="+p.Address)
	}
	slices.Sort(stored)
	slices.Sort(given)
	if !slices.Equal(stored, given) {
		return fmt.Errorf("%w: the peers given (%s) differ from the cluster stored in %s (%s): give the stored peers, or a fresh data directory to join a new cluster",
			ErrInvalidConfig, strings.Join(given, ","), l.cfg.Dir, strings.Join(stored, ","))
	}
	return nil
}

// IsLeader reports whether this node is raft's leader now.
func (l *Log) IsLeader() bool { return l.raft.State() == raft.Leader }

// LeaderCh delivers true when this node becomes the leader and false when
// it stops being it. Only the latest change is kept for a slow reader.
func (l *Log) LeaderCh() <-chan bool { return l.raft.LeaderCh() }

// Leader returns the leader's id and raft address as this node knows
// them; empty while none is known.
func (l *Log) Leader() (id, addr string) {
	a, i := l.raft.LeaderWithID()
	return string(i), string(a)
}

// Term is raft's current term: the epoch of a driver elected in it.
func (l *Log) Term() uint64 { return l.raft.CurrentTerm() }

// Barrier waits until every entry committed before it is applied to the
// FSM (on the leader: everything earlier leaders committed).
func (l *Log) Barrier(ctx context.Context) error {
	if err := l.wait(ctx, func(timeout time.Duration) raft.Future { return l.raft.Barrier(timeout) }); err != nil {
		return fmt.Errorf("recovery: barrier: %w", futureError(err))
	}
	return nil
}

// VerifyLeader confirms with a majority that this node still leads.
func (l *Log) VerifyLeader(ctx context.Context) error {
	if err := l.wait(ctx, func(time.Duration) raft.Future { return l.raft.VerifyLeader() }); err != nil {
		return fmt.Errorf("recovery: verify leadership: %w", futureError(err))
	}
	return nil
}

// LastCompleted is View().LastCompleted without copying the state.
func (l *Log) LastCompleted() int64 {
	l.fsm.mu.RLock()
	defer l.fsm.mu.RUnlock()
	return l.fsm.mu.st.lastCompleted
}

// Epoch is View().Epoch (the newest DriverStarted) without copying.
func (l *Log) Epoch() (epoch uint64, driver string) {
	l.fsm.mu.RLock()
	defer l.fsm.mu.RUnlock()
	return l.fsm.mu.st.epoch, l.fsm.mu.st.driver
}

// TransferLeadership asks raft to hand the leadership to another voter
// (the most up to date), for a leader that cannot drive. It returns once
// the transfer is done or has failed.
func (l *Log) TransferLeadership(ctx context.Context) error {
	if err := l.wait(ctx, func(time.Duration) raft.Future { return l.raft.LeadershipTransfer() }); err != nil {
		return fmt.Errorf("recovery: transfer leadership: %w", futureError(err))
	}
	return nil
}
