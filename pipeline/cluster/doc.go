// Package cluster gives the workers of Vigil's JetStream scale-out
// (docs/SCALEOUT.md) membership, partition assignment, fenced ownership
// and checkpoint storage, on NATS JetStream's KV and object stores:
//
//   - Member: a lease in the members bucket, renewed every third of the
//     lease by compare-and-swap, and a watch of the other members. A
//     member whose renewal finds its key gone or moved is lost (Lost);
//     ValidUntil tells the worker how long it may still act on its lease.
//   - Assign and Owned: rendezvous hashing of partitions over the live
//     workers' IDs, so only a leaving worker's partitions move.
//   - Records: one ownership record per partition in the cluster bucket,
//     changed only by compare-and-swap. A worker takes a partition only
//     when its recorded owner released it or its lease is gone, and every
//     later write (a checkpoint, the release) fails with ErrFenced once
//     another worker took it.
//   - Checkpoints: snapshots in the object store under names never reused,
//     with a SHA-256 digest the record keeps and Get verifies.
package cluster
