// Package rpc is the inter-node transport of a Sluice cluster: one TCP
// port per node (--raft HOST:PORT) carries both hashicorp/raft's traffic
// and Sluice's own msgpack RPC (block replication, task dispatch, state
// transfer, forwarding events to the leader).
//
// A manual, in the order a node uses it:
//
//  1. Listen. Listen(id, addr, peers, opts) binds the port; peers maps
//     every node id, this one included, to its address. SetPeers replaces
//     the map on a membership change. The wire format (a lane byte, then
//     raft's stream or an "SLRP" v1 preamble and CRC-checked msgpack
//     frames) is drawn in frame.go; its constants are frozen.
//  2. Hand Raft() to raft.NewRaft and use RaftAddress(id) for the
//     addresses in raft's configuration. Raft's NetworkTransport runs over
//     a StreamLayer whose connections begin with the raft lane byte.
//  3. Register handlers with Handle before peers call them. A handler gets
//     the caller's node id and the msgpack body (Decode it), returns a body
//     (Encode it) or an error: an *Error (Errorf) keeps its Code across the
//     wire, anything else arrives as Code "internal". Its context carries
//     the caller's deadline and ends when the endpoint closes or the
//     caller's connection breaks.
//  4. Call. Call(ctx, to, method, req, resp) encodes req, sends it, and
//     decodes the reply into resp. Without a deadline in ctx, Options.Timeout
//     applies. Calls to one peer share one connection, multiplexed by
//     request id; the server runs each request in its own goroutine, at
//     most Options.MaxInFlight per connection.
//  5. Read errors by class: ErrUnknownPeer (not in the peer map),
//     ErrUnreachable (dial or I/O failed; wraps the cause), ErrTimeout,
//     ErrClosed, ErrUnknownMethod, or an *Error from the handler (IsCode).
//  6. Retries are at most once per handler: Call resends only when the
//     request provably reached no handler (dial refused, write failed),
//     Options.Retries times with doubling backoff from Options.Backoff.
//     Once the request is on the wire a broken connection is ErrUnreachable
//     with the outcome unknown; a caller whose method is idempotent may
//     retry it itself.
//  7. Close. Close closes the listener, raft's transport and every
//     connection, fails calls in flight with ErrClosed, cancels running
//     handlers and waits for every goroutine the endpoint started. Shut
//     raft down first.
//  8. Simulate. NewMemNetwork gives in-process endpoints with the same
//     contract: raft over raft's InmemTransport (addresses are node ids),
//     RPC through the same msgpack envelopes as TCP but no sockets.
//     Partition, Isolate and Heal cut and restore both lanes; Endpoint(id)
//     after the old one closed is a restarted node.
//
// Bad input never stops a node: a connection with a wrong preamble or a
// malformed frame (over MaxFrame, bad crc32c, undecodable) is logged as a
// warning with the remote address and closed; others carry on.
//
// Concurrency: every method of an Endpoint is safe to call concurrently.
// Each goroutine has one owner, the endpoint, and none outlives Close.
package rpc
