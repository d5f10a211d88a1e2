// Package mqtt connects Vigil to an MQTT 5 broker: Source reads telemetry
// (a pipeline.Source) and Publisher republishes alerts (a pipeline.Sink).
// Both use paho.golang's autopaho and share one Config; each has its own
// client ID.
//
// # Delivery
//
// The Source delivers at least once. Its session is persistent, and QoS 1
// messages are acknowledged only after the pipeline has processed the batch
// that holds them and handed its alerts to the sink (FrameBatch.Ack). The
// acknowledgements leave in the order the messages arrived, as MQTT
// requires. A connection lost before that, a crash or a restart leaves the
// messages unacknowledged and the broker delivers them again: expect
// duplicates. Acknowledgements made after a reconnect for messages of the
// previous connection are skipped, since the broker redelivers those.
//
// The broker never has more than Config.ReceiveMaximum unacknowledged QoS 1
// messages outstanding (the CONNECT property), which is the flow-control
// window: the paho callback never blocks and never has to drop a QoS 1
// message. QoS 0 messages beyond SourceOptions.MaxQueuedQoS0 are dropped and
// counted.
//
// The Publisher's Write returns once the broker has acknowledged every alert,
// retrying across reconnects. As an alert output (Output, run by
// pipeline/output's runner), it makes one bounded attempt per Write instead
// (WriteOnce) and returns the failure, so that the runner owns retries,
// backoff, max_attempts, failure metrics and the output's status.
//
// # Connection
//
// Start connects and fails fast with a *ConnectError that names the key to
// check when the broker refuses the credentials or the client ID, the TLS
// handshake fails (untrusted CA, missing or rejected client certificate), or
// a subscription is refused. Once connected, every failure is retried with
// exponential backoff and jitter, forever. Each state change is logged once
// (connecting, connected, connection lost with the reason, connect failed
// with the reason); messages are counted, never logged.
//
// Passwords are read from a file or an environment variable at every
// connection attempt and are never logged. Plaintext connections to hosts
// other than loopback are refused unless Config.AllowPlaintext is set. TLS
// sessions are resumed across reconnects (a shared client session cache).
//
// paho reads a packet in about three small reads and writes each packet as
// several buffers; the connection is wrapped in a buffered reader and a
// coalescing writer, which on loopback lifts the QoS 1 ingest rate by about
// half. The Source's connection goes further: it takes QoS 0 and 1 PUBLISH
// packets out of the stream itself, without allocating, and queues them for
// ReadBatch, which paho did on two goroutines with several allocations per
// message (the live path's limit, issue 15); it sends their PUBACKs itself,
// in receive order, and leaves QoS 2 and every other packet to paho. After a
// read that found the connection idle it waits SourceOptions.Linger before
// reading again, so that one read and one wake-up of the pipeline serve a
// burst. Mosquitto should run with set_tcp_nodelay true (Nagle otherwise adds
// tens of milliseconds of latency), a max_queued_messages that covers the
// backlog an outage can build (its default of 1000 drops QoS 1 messages), and,
// to survive its own crash, persistence with autosave_on_changes: a killed
// Mosquitto restarts from its last save and may have forgotten Vigil's
// session, losing what devices publish before Vigil subscribes again.
//
// # Metrics
//
// With a *metrics.Set in the options: vigil_mqtt_connected{role},
// vigil_mqtt_connects_total, vigil_mqtt_reconnects_total,
// vigil_mqtt_connect_errors_total, vigil_mqtt_tls_handshakes_total,
// vigil_mqtt_tls_resumed_total (all labelled role="source" or "publisher"),
// vigil_mqtt_messages_received_total, vigil_mqtt_messages_dropped_total{reason},
// vigil_mqtt_messages_acked_total, vigil_mqtt_acks_skipped_total,
// vigil_mqtt_messages_queued, vigil_mqtt_alerts_published_total,
// vigil_mqtt_state_published_total, vigil_mqtt_publish_retries_total and
// vigil_mqtt_publish_failures_total.
package mqtt
