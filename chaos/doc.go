// Package chaos is Sluice's fault-injection harness: it starts a cluster of
// real node processes on loopback, feeds it through the reliable ingest
// endpoint with records that each carry a unique token, injects faults
// from a seeded schedule, and checks afterwards that the cluster counted
// exactly what it acknowledged.
//
// It is black-box: it runs the node binary it is given (Config.Binary and
// Config.Args, usually `node run`), talks to the nodes over HTTP (the
// JSON API and POST /api/ingest) and reads the files the nodes write
// under their data directories. It imports nothing of the engine.
//
// The pieces, one file each:
//
//  1. cluster.go: the launcher. Node i gets loopback IP 127.0.0.(10+i), a
//     raft port, an HTTP port and a data directory; the others dial it
//     through its proxy (proxy.go), which cuts links by source IP.
//  2. load.go: producers that send numbered requests, retried on another
//     node until acknowledged; each line is "tok-pP-sS-L w w w...".
//  3. schedule.go and nemesis.go: the faults (SIGKILL and restart,
//     SIGSTOP past the election timeout, all nodes killed and restarted,
//     partitions, clock jumps), planned from the seed alone, so that
//     --seed replays the same schedule.
//  4. monitor.go: who leads, batches and their delays, sampled through
//     the run for failover times and the timeline.
//  5. checker.go: after the cluster settles, every token and word against
//     the offline recount, in the output files and the state API of
//     every node.
//  6. report.go: summary.txt, report.json and timeline.svg.
//  7. docker.go: with Config.Docker the nodes are containers of a Docker
//     engine instead (an image FROM scratch, a network of the run's own,
//     faults as docker kill/start, pause/unpause, network
//     disconnect/connect); every object of the run is removed at its end.
//
// Every process it starts is killed before Run returns, on any path; on
// Linux the nodes also die with the harness (Pdeathsig).
package chaos
