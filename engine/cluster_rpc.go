package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/sluice-stream/sluice/checkpoint"
	"github.com/sluice-stream/sluice/engine/rpc"
	"github.com/sluice-stream/sluice/recovery"
	"github.com/sluice-stream/sluice/state"
	"github.com/sluice-stream/sluice/wal"
	"github.com/vmihailenco/msgpack/v5"
)

// The engine's calls between nodes. Method names and message fields are
// part of the wire format between nodes of one release (msgpack maps
// keyed by the tags below).
const (
	methodApply     = "meta.apply"  // forward a BlockAdded to the leader
	methodBlockPut  = "block.put"   // store a replica of a block
	methodBlockGet  = "block.get"   // read a block
	methodDelta     = "state.delta" // a batch's state delta, before it completes
	methodCkptFiles = "ckpt.files"  // the files of a checkpoint
	methodCkptRead  = "ckpt.read"   // a chunk of one of them
	methodStatus    = "node.status" // how a node sees itself, for /api/cluster
)

// Error codes of the handlers.
const (
	codeNotLeader = "not-leader"
	codeNotFound  = "not-found"
	codeBehind    = "behind"
	codeFenced    = "fenced"
	codeRefused   = "refused"
)

type blockMsg struct {
	ID      wal.BlockID `msgpack:"id"`
	Records []string    `msgpack:"r,omitempty"`
}

type deltaMsg struct {
	Epoch uint64 `msgpack:"e"`
	Time  int64  `msgpack:"t"`
	Prev  int64  `msgpack:"p"`
	Data  []byte `msgpack:"d"`
}

type ckptReadMsg struct {
	Ref checkpoint.Ref `msgpack:"r"`
	Rel string         `msgpack:"f"`
	Off int64          `msgpack:"o"`
	N   int            `msgpack:"n"`
}

// NodeStatus is how one node sees itself: GET /api/cluster lists every
// node's.
type NodeStatus struct {
	ID            string    `json:"id" msgpack:"id"`
	Role          string    `json:"role" msgpack:"ro"` // raft's state: Leader, Follower, Candidate; "unreachable"
	Term          uint64    `json:"term" msgpack:"te"`
	Leader        string    `json:"leader" msgpack:"le"`
	LastContact   time.Time `json:"last_contact,omitzero" msgpack:"lc"`
	Driving       bool      `json:"driving" msgpack:"dr"`
	Epoch         uint64    `json:"epoch" msgpack:"ep"`
	LastCompleted Time      `json:"last_completed" msgpack:"lb"`
	StateApplied  Time      `json:"state_applied" msgpack:"sa"` // the batch this node's state replica is as of
	AppliedIndex  uint64    `json:"applied_index" msgpack:"ai"`
	Error         string    `json:"error,omitempty" msgpack:"er,omitempty"`
}

func (n *clusterNode) handle() {
	n.net.Handle(methodApply, n.serveApply)
	n.net.Handle(methodBlockPut, n.serveBlockPut)
	n.net.Handle(methodBlockGet, n.serveBlockGet)
	n.net.Handle(methodDelta, n.serveDelta)
	n.net.Handle(methodCkptFiles, n.serveCkptFiles)
	n.net.Handle(methodCkptRead, n.serveCkptRead)
	n.net.Handle(methodMapTask, n.serveMapTask)
	n.net.Handle(methodStateTask, n.serveStateTask)
	n.net.Handle(methodStatus, func(context.Context, string, []byte) ([]byte, error) {
		return msgpack.Marshal(n.status())
	})
}

// serveApply applies a BlockAdded forwarded by another node. Only blocks
// are forwarded: a driver's events are its own leader's to commit.
func (n *clusterNode) serveApply(ctx context.Context, from string, body []byte) ([]byte, error) {
	var data []byte
	if err := msgpack.Unmarshal(body, &data); err != nil {
		return nil, rpc.Errorf(codeRefused, "meta.apply does not decode: %v", err)
	}
	ev, err := recovery.DecodeEvent(data)
	if err != nil {
		return nil, rpc.Errorf(codeRefused, "%v", err)
	}
	if _, ok := ev.(recovery.BlockAdded); !ok {
		return nil, rpc.Errorf(codeRefused, "%s is not forwarded; only BlockAdded is", ev.Type())
	}
	meta := n.meta()
	if !meta.IsLeader() {
		id, _ := meta.Leader()
		return nil, rpc.Errorf(codeNotLeader, "%s", id)
	}
	res, err := meta.Apply(ctx, ev)
	if errors.Is(err, recovery.ErrNotLeader) {
		return nil, rpc.Errorf(codeNotLeader, "")
	}
	if err != nil {
		return nil, err
	}
	return msgpack.Marshal(&res)
}

func (n *clusterNode) serveBlockPut(_ context.Context, from string, body []byte) ([]byte, error) {
	var m blockMsg
	if err := msgpack.Unmarshal(body, &m); err != nil || m.ID.Stream == "" || m.ID.Node == "" {
		return nil, rpc.Errorf(codeRefused, "block.put does not decode to a block id (%v)", err)
	}
	if err := n.c.storage.blocks.Append(wal.Block{ID: m.ID, Records: m.Records}); err != nil {
		return nil, err
	}
	return nil, nil
}

func (n *clusterNode) serveBlockGet(_ context.Context, from string, body []byte) ([]byte, error) {
	var m blockMsg
	if err := msgpack.Unmarshal(body, &m); err != nil || m.ID.Stream == "" || m.ID.Node == "" {
		return nil, rpc.Errorf(codeRefused, "block.get does not decode to a block id (%v)", err)
	}
	b, err := n.c.storage.blocks.Read(m.ID)
	if errors.Is(err, wal.ErrNotFound) {
		return nil, rpc.Errorf(codeNotFound, "block %v is not here", m.ID)
	}
	if err != nil {
		return nil, err
	}
	return msgpack.Marshal(&blockMsg{ID: m.ID, Records: b.Records})
}

// serveDelta takes a batch's state delta from the driver (see
// replicaLoop for when it is applied).
func (n *clusterNode) serveDelta(ctx context.Context, from string, body []byte) ([]byte, error) {
	var m deltaMsg
	if err := msgpack.Unmarshal(body, &m); err != nil {
		return nil, rpc.Errorf(codeRefused, "state.delta does not decode: %v", err)
	}
	if e, driver := n.meta().Epoch(); m.Epoch < e || !n.noteEpoch(m.Epoch) || n.driving() {
		return nil, rpc.Errorf(codeFenced, "delta of batch %v from %s of epoch %d: driver %s started epoch %d", Time(m.Time), from, m.Epoch, driver, e)
	}
	n.c.replicaMu.Lock()
	defer n.c.replicaMu.Unlock()
	if n.driving() {
		return nil, rpc.Errorf(codeFenced, "this node drives now")
	}
	store := n.c.stateStore()
	if store == nil {
		return nil, rpc.Errorf(codeBehind, "no state store open")
	}
	n.awaitCompleted(ctx, store, m.Prev)
	if err := n.applyCompleted(store); err != nil {
		return nil, err
	}
	err := store.ImportDelta(m.Time, m.Prev, m.Data)
	if errors.Is(err, state.ErrBehind) {
		applied, _ := store.Applied()
		p, _, _ := store.Pending()
		n.c.log.Debug("a state delta arrived ahead of this replica", "batch", Time(m.Time), "prev", Time(m.Prev),
			"applied", Time(applied), "pending", Time(p), "last_completed", Time(n.meta().LastCompleted()))
		return nil, rpc.Errorf(codeBehind, "%d", applied)
	}
	return nil, err
}

// awaitCompleted waits (briefly) until this node's log says batch prev
// completed when its delta is the one pending here: the driver committed
// it before it ran the batch whose delta is arriving, so the entry is on
// its way.
func (n *clusterNode) awaitCompleted(ctx context.Context, store *state.Store, prev int64) {
	p, ok, err := store.Pending()
	if err != nil || !ok || p != prev {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	for n.meta().LastCompleted() < prev {
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func (n *clusterNode) serveCkptFiles(_ context.Context, from string, body []byte) ([]byte, error) {
	var ref checkpoint.Ref
	if err := msgpack.Unmarshal(body, &ref); err != nil {
		return nil, rpc.Errorf(codeRefused, "ckpt.files does not decode: %v", err)
	}
	files, err := n.c.storage.ckpts.Files(ref)
	if errors.Is(err, checkpoint.ErrNotFound) {
		return nil, rpc.Errorf(codeNotFound, "%v", err)
	}
	if err != nil {
		return nil, err
	}
	return msgpack.Marshal(files)
}

func (n *clusterNode) serveCkptRead(_ context.Context, from string, body []byte) ([]byte, error) {
	var m ckptReadMsg
	if err := msgpack.Unmarshal(body, &m); err != nil || m.N <= 0 || m.N > ckptChunk {
		return nil, rpc.Errorf(codeRefused, "ckpt.read does not decode or asks for %d bytes: %v", m.N, err)
	}
	b, err := n.c.storage.ckpts.ReadAt(m.Ref, m.Rel, m.Off, m.N)
	if errors.Is(err, checkpoint.ErrNotFound) {
		return nil, rpc.Errorf(codeNotFound, "%v", err)
	}
	if err != nil {
		return nil, err
	}
	return msgpack.Marshal(b)
}

const ckptChunk = 4 << 20

// fetchCheckpoint installs a copy of ref's checkpoint from node.
func (n *clusterNode) fetchCheckpoint(ctx context.Context, node string, ref checkpoint.Ref) error {
	return n.c.storage.ckpts.Install(ref, n.c.storage.ckptMeta, func(rel string, w io.Writer) error {
		for off := int64(0); ; {
			var b []byte
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := n.net.Call(cctx, node, methodCkptRead, &ckptReadMsg{Ref: ref, Rel: rel, Off: off, N: ckptChunk}, &b)
			cancel()
			if err != nil {
				return err
			}
			if len(b) == 0 {
				return nil
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
			off += int64(len(b))
		}
	})
}

// applyAnywhere commits a BlockAdded: here when this node leads, else
// forwarded to the leader, retrying (the FSM makes a re-sent block
// harmless) until ctx ends.
func (n *clusterNode) applyAnywhere(ctx context.Context, ev recovery.BlockAdded) (recovery.Result, error) {
	meta := n.meta()
	data, err := recovery.EncodeEvent(ev)
	if err != nil {
		return recovery.Result{}, err
	}
	backoff := 10 * time.Millisecond
	for {
		leader, _ := meta.Leader()
		var res recovery.Result
		switch {
		case leader == n.c.cfg.NodeID:
			res, err = meta.Apply(ctx, ev)
		case leader == "":
			err = fmt.Errorf("%w: no leader is known", recovery.ErrNotLeader)
		default:
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err = n.net.Call(cctx, leader, methodApply, data, &res)
			cancel()
		}
		retry := errors.Is(err, recovery.ErrNotLeader) || rpc.IsCode(err, codeNotLeader) ||
			errors.Is(err, rpc.ErrUnreachable) || errors.Is(err, rpc.ErrTimeout) || errors.Is(err, recovery.ErrTimeout)
		if !retry {
			return res, err
		}
		select {
		case <-ctx.Done():
			return recovery.Result{}, fmt.Errorf("registering the block: %w (last: %w)", ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// replicate copies a block to Replication−1 other nodes, trying them in
// ring order, and returns the ones that stored it.
func (n *clusterNode) replicate(ctx context.Context, b wal.Block) ([]string, error) {
	want := n.replication - 1
	var got []string
	var errs []error
	// The leader first (its driver then reads the block from its own
	// WAL), then in ring order.
	leader, _ := n.meta().Leader()
	for _, node := range n.liveFirst(n.others, leader) {
		if len(got) == want {
			break
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := n.net.Call(cctx, node, methodBlockPut, &blockMsg{ID: b.ID, Records: b.Records}, nil)
		cancel()
		if err != nil {
			n.markDown(node)
			errs = append(errs, fmt.Errorf("%s: %w", node, err))
			continue
		}
		got = append(got, node)
	}
	if len(got) < want {
		return got, fmt.Errorf("block %v is on %d of the %d nodes it must be on before it is acknowledged: %w",
			b.ID, len(got)+1, n.replication, errors.Join(errs...))
	}
	return got, nil
}

// fetchBlock reads a block this node does not hold from the nodes that
// do: the live ones first, and the next one too when the one asked has
// not answered within blockHedge (a stopped node must not cost every
// block of a replay the call's timeout). The first answer wins.
func (n *clusterNode) fetchBlock(ctx context.Context, e recovery.BlockEntry) (wal.Block, error) {
	id := wal.BlockID{Stream: e.Ref.Stream, Node: e.Ref.Node, Seq: e.Ref.Seq}
	holders := n.liveFirst(append([]string{e.Ref.Node}, e.Replicas...), "")
	type answer struct {
		node string
		m    blockMsg
		err  error
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // the calls still out
	answers := make(chan answer, len(holders))
	asked := 0
	ask := func() {
		node := holders[asked]
		asked++
		go func() {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			var m blockMsg
			err := n.net.Call(cctx, node, methodBlockGet, &blockMsg{ID: id}, &m)
			answers <- answer{node, m, err}
		}()
	}
	ask()
	hedge := time.NewTimer(blockHedge)
	defer hedge.Stop()
	var errs []error
	for out := 1; out > 0; {
		select {
		case a := <-answers:
			out--
			if a.err == nil {
				return wal.Block{ID: id, Records: a.m.Records}, nil
			}
			if !rpc.IsCode(a.err, codeNotFound) && ctx.Err() == nil {
				n.markDown(a.node)
			}
			errs = append(errs, fmt.Errorf("%s: %w", a.node, a.err))
			if out == 0 && asked < len(holders) {
				ask()
				out++
				hedge.Reset(blockHedge)
			}
		case <-hedge.C:
			if asked < len(holders) {
				ask()
				out++
				hedge.Reset(blockHedge)
			}
		}
	}
	return wal.Block{}, fmt.Errorf("block %v is on no node that answers: %w", id, errors.Join(errs...))
}

// blockHedge is how long fetchBlock waits for a node before asking the
// next one as well.
const blockHedge = 500 * time.Millisecond

// shipDelta sends batch t's delta to every other node, in parallel, and
// waits for their answers (bounded): a node that answers holds it before
// the batch completes. It returns how many took it. A node that is down
// is skipped; the driver does not wait on it again for a few seconds.
func (n *clusterNode) shipDelta(epoch uint64, t, prev Time, data []byte) int {
	msg := &deltaMsg{Epoch: epoch, Time: int64(t), Prev: int64(prev), Data: data}
	n.keepDelta(msg)
	answers := make(chan bool, len(n.others))
	out := 0
	for _, node := range n.others {
		if n.isDown(node) {
			continue
		}
		out++
		go func() {
			ctx, cancel := context.WithTimeout(n.ctx, time.Second)
			defer cancel()
			err := n.net.Call(ctx, node, methodDelta, msg, nil)
			switch {
			case err == nil:
				answers <- true
			case rpc.IsCode(err, codeBehind):
				answers <- n.catchUp(ctx, node, epoch, err)
			default:
				n.c.log.Debug("a node did not take the state delta", "node", node, "batch", t, "err", err)
				n.markDown(node)
				answers <- false
			}
		}()
	}
	return awaitTaken(answers, out, deltaGrace)
}

// awaitTaken counts the out answers (true: the node took the delta), but
// once one node holds the delta it waits no more than grace for the
// others: a stopped node must not hold up every batch for the call's
// timeout. One that answers late, or not, is sent what it missed when it
// says it is behind.
func awaitTaken(answers <-chan bool, out int, grace time.Duration) int {
	acked := 0
	var after <-chan time.Time
	for ; out > 0; out-- {
		select {
		case ok := <-answers:
			if ok {
				acked++
				if after == nil {
					after = time.After(grace)
				}
			}
		case <-after:
			return acked
		}
	}
	return acked
}

// deltaGrace is how long shipDelta waits for the other nodes once one
// holds the delta.
const deltaGrace = 250 * time.Millisecond

// keepDelta remembers a shipped delta, so a replica that fell behind can
// be sent the ones it missed. The deltas kept are bounded in number and
// bytes; a replica behind them restores from a checkpoint first.
func (n *clusterNode) keepDelta(m *deltaMsg) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if k := len(n.mu.recent); k > 0 && n.mu.recent[k-1].Time >= m.Time {
		n.mu.recent, n.mu.recentBytes = nil, 0 // a re-run: what came after it is void
	}
	n.mu.recent = append(n.mu.recent, m)
	n.mu.recentBytes += len(m.Data)
	for len(n.mu.recent) > 1 && (len(n.mu.recent) > maxKeptDeltas || n.mu.recentBytes > maxKeptDeltaBytes) {
		n.mu.recentBytes -= len(n.mu.recent[0].Data)
		n.mu.recent = n.mu.recent[1:]
	}
}

const (
	maxKeptDeltas     = 256
	maxKeptDeltaBytes = 64 << 20
)

// catchUp sends a replica that answered "behind" (with the batch its
// state is as of) every kept delta after that batch, in order. It
// reports whether the replica then holds the newest one.
func (n *clusterNode) catchUp(ctx context.Context, node string, epoch uint64, behind error) bool {
	var re *rpc.Error
	if !errors.As(behind, &re) {
		return false
	}
	applied, err := strconv.ParseInt(re.Message, 10, 64)
	if err != nil {
		return false
	}
	n.mu.Lock()
	var chain []*deltaMsg
	for i, m := range n.mu.recent {
		if m.Prev == applied {
			chain = slices.Clone(n.mu.recent[i:])
			break
		}
	}
	n.mu.Unlock()
	if chain == nil {
		n.c.log.Debug("a node's state replica is behind the deltas kept; it restores from a checkpoint", "node", node, "as_of", Time(applied))
		return false
	}
	for _, m := range chain {
		m := *m
		m.Epoch = epoch
		if err := n.net.Call(ctx, node, methodDelta, &m, nil); err != nil {
			n.c.log.Debug("catching a replica up failed", "node", node, "batch", Time(m.Time), "err", err)
			return false
		}
	}
	n.c.log.Info("a node's state replica caught up", "node", node, "from", Time(applied), "deltas", len(chain))
	return true
}

// liveFirst orders nodes (this one left out) for a call: preferred first
// if it answered lately, then the others that did, in the order given,
// then those that failed lately.
func (n *clusterNode) liveFirst(nodes []string, preferred string) []string {
	var up, down []string
	for _, node := range nodes {
		switch {
		case node == n.c.cfg.NodeID:
		case n.isDown(node):
			down = append(down, node)
		case node == preferred:
			up = append([]string{node}, up...)
		default:
			up = append(up, node)
		}
	}
	return append(up, down...)
}

func (n *clusterNode) isDown(node string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return time.Now().Before(n.mu.down[node])
}

func (n *clusterNode) markDown(node string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.down[node] = time.Now().Add(3 * time.Second)
}
