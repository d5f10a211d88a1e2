// Package jetstream carries Vigil's telemetry through a NATS JetStream
// stream partitioned by device, the ingest side of the scale-out
// (docs/SCALEOUT.md):
//
//	plant Mosquitto ──QoS 1──▶ Bridge ──publish, wait for PubAcks──▶ stream VIGIL
//	                ◀──PUBACK after PubAcks──┘      vigil.telemetry.<p>.<token>
//	devices publishing to NATS ──▶ vigil.in.<token> ──(stream subject transform)──┘
//	stream VIGIL ──▶ (planned: a source per partition: ordered replay, then the pinned consumer) ──▶ pipeline
//
// A message's subject is vigil.telemetry.<p>.<token>: token is the device
// ID as exactly one subject token (Escape), p is PartitionOf(device, n),
// which is pipeline.Partition over the token and so equals the partition
// the server's own mapping {{partition(n,1)}} computes for
// vigil.in.<token>. The MQTT topic travels in the Vigil-Topic header and
// the payload unchanged, so workers decode with the decoder Vigil has.
//
// Setup creates or checks the stream, one pull consumer per partition in a
// pinned priority group, and the buckets the cluster keeps its members,
// ownership records and checkpoints in; it needs nats-server 2.11 or later
// (ServerVersionOK). The Bridge publishes MQTT batches and lets the caller
// acknowledge them only when JetStream stored every message.
package jetstream
