// Package pipeline is Vigil's staged detection pipeline and its domain
// types: raw frames in, decoded readings through per-device processors,
// alerts out, in stream order, the same in replay and live.
//
//	Source ──FrameBatch──▶ decode ×D ──(in order)──▶ dispatch ──▶ shard ×W ──▶ merge ──▶ Sink
//	 file, mqtt            parse JSON,               rejections,  Processor:  alerts by
//	 (ReadBatch)           route by Partition(dev)   dead letters, baselines,  stream position,
//	                                                 stream clock  detectors   then the batch's Ack
//
// Batches of up to BatchSize frames circulate through a fixed free list,
// which bounds memory and is the backpressure: a source waits for a free
// batch. Each device's readings go to one shard (Partition: FNV-1a of its
// ID, stable across processes), whose Processor owns that device's state
// without locks; the merge stage waits for every shard to finish a batch and
// orders their alerts by stream position, so the output does not depend on
// the number of decoders or workers.
//
// Time is event time. Nothing after the source reads the clock: a reading's
// Arrival is its receive time live and the stream clock (the latest event
// time so far) in replay; processors that implement Ticker are ticked with
// the stream clock after each batch (and, live, when nothing arrives for
// Config.Tick), Rejecter hears of rejected frames of known devices,
// Newcomer counts first sightings for the fleet judge (Config.Fleet).
//
// Barriers: Snapshot and Reconfigure send a batch with no frames behind the
// ones already read. Each shard handles it when it gets there (every
// reading before it judged, none after): Snapshotter processors write their
// records, or a reconfiguration is applied; the merge stage completes it
// after every shard. Barriers neither tick nor judge the fleet, so they
// change no alert. Config.Resume and Position continue a stream from a
// snapshot.
//
// Shutdown is a drain: cancelling Run's context stops the source; each stage
// ends when its input closes; after Config.DrainTimeout a hard stop aborts
// what is still blocked. Run returns after every goroutine has exited.
package pipeline
