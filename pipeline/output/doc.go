// Package output delivers alerts to their destinations without ever holding
// up detection.
//
// The pipeline's merge stage writes each batch of alerts once, to the
// durable journal (package journal); it acknowledges the input as soon as
// the journal has them. Each configured destination is an Output run by its
// own Runner on its own goroutine: the runner reads the journal from the
// output's persisted cursor, batches, writes, retries with capped
// exponential backoff and jitter, reconnects, dead-letters what the
// destination refuses for good, and advances the cursor only when the
// destination has accepted the alerts. One slow or dead destination
// therefore blocks neither another nor the pipeline; it only falls behind
// (its lag is a metric) until the journal's size cap applies.
//
// What an alert looks like at a destination is a Formatter (alert → bytes:
// JSON, CEF, LEEF, ECS, OCSF, …), separate from the transport that carries
// it (syslog over TLS, a file, HTTP, MQTT, NATS), so CEF over syslog and CEF
// to a file are one formatter and two transports.
package output
