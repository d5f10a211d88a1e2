// Package httpout delivers alerts over HTTPS: to a Splunk HTTP Event
// Collector (HEC), to Elasticsearch or OpenSearch through the _bulk API
// (Bulk), and to any receiver of JSON webhooks (Webhook). Each is an
// output.Output; the output.Runner retries, backs off and dead-letters. The
// body of each event is rendered by an injected output.Formatter (JSON,
// ECS, OCSF, CEF, …), so transport and format stay independent.
//
// # Delivery guarantees
//
// All three are at least once: Write returns nil only once the destination
// has accepted every alert, and a retry may store an alert a second time
// unless the destination deduplicates as described.
//
//   - HEC without ack: an alert counts as delivered when HEC answers
//     success, which means "received and valid", not yet indexed; a crash
//     of the Splunk indexer after that can lose it. HEC does not
//     deduplicate: a retried batch is indexed again (each event carries
//     fields.event_id, so searches can dedup on it).
//   - HEC with ack: true: Write waits until Splunk reports the request's
//     ackId indexed (polling /services/collector/ack on the output's
//     channel, with backoff, for at most ack_timeout). If the
//     acknowledgement does not come in time the batch is sent again, so
//     duplicates are possible but loss is not. When the token has
//     acknowledgement disabled, HEC answers without an ackId; the output
//     then logs a warning once and falls back to the guarantee without ack.
//   - Bulk: each document's _id is the alert's EventID, so a retried alert
//     is stored once (op_type create: the retry's 409 counts as success;
//     op_type index: it overwrites the same document). Items the cluster
//     refuses are reported one by one in an *output.BatchError: 429 and
//     5xx are retried, other refusals (mapping errors…) are permanent.
//     Exactly once per index, at least once overall (a daily index
//     template writes an alert and its retry to the same index, since the
//     name comes from the alert's time, not the clock).
//   - Webhook: delivered when the receiver answers 2xx. Every request
//     carries an Idempotency-Key (a SHA-256 of its alerts' EventIDs) that
//     a retry repeats, so a receiver that remembers keys can drop
//     duplicates.
//
// # Errors
//
// Responses are classified alike: 2xx is success; 408, 429, 5xx and
// transport errors are retryable (a *RetryAfterError when the server sent
// Retry-After). So are 401, 403, 404 and redirects (never followed): they
// say the credentials or the URL are wrong, which an operator fixes, so the
// alerts wait in the journal instead of filling the dead letters. Other
// 4xx are wrapped with output.Permanent. HEC's JSON status codes refine
// this: codes 1–4 and 16 (token), 7 (index), 10, 11, 14 (channel, ack) are
// configuration problems and retried, like 8, 9 and 18–20 (busy,
// unhealthy); 5, 6, 12, 13, 15 (data) are permanent; when HEC names the
// refused event (invalid-event-number), only
// that alert is permanent and the others are retried. Error texts carry
// the status and the start of the response body, with every configured
// credential redacted; tokens, keys, passwords and secrets never appear in
// an error or a log line.
//
// # Transport security
//
// URLs are https:// with output.TLS settings (CA, client certificate,
// server name, minimum version). http:// is refused for hosts that are not
// loopback unless allow_plaintext is set. Credentials are read from files
// (*_file) or environment variables (*_env) at every Connect, never from
// the configuration text.
//
// # Verifying webhook signatures
//
// With secret_file or secret_env set, every webhook request carries
//
//	X-Vigil-Timestamp: <Unix seconds of this attempt>
//	X-Vigil-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
//
// A receiver should, before parsing the body:
//
//  1. read the raw body bytes and the two headers (reject if missing);
//  2. reject the request if the timestamp is more than 5 minutes
//     (DefaultReplayWindow) away from its own clock, which bounds replays;
//  3. compute the HMAC-SHA256 of the timestamp text, ".", and the raw body,
//     keyed with the shared secret, and compare it with the hex after
//     "sha256=" in constant time (hmac.Equal in Go,
//     hmac.compare_digest in Python);
//  4. remember the Idempotency-Key of accepted requests for longer than
//     the replay window and the sender's retry horizon, and answer 2xx
//     without acting to a key seen before.
//
// The timestamp and signature are computed anew for every attempt, so a
// retry hours later still falls within the window, while a captured
// request cannot be replayed after it. VerifySignature implements steps
// 1–3 for receivers written in Go.
package httpout
