// Package syslog is an output.Output that sends alerts to a syslog
// receiver (rsyslog, syslog-ng, a SIEM's collector) as RFC 5424 messages:
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID id="…" event="…" …] MSG
//
// PRI is the configured facility and a severity from the alert: crit (2)
// for a firing critical alert, warning (4) for another firing alert,
// notice (5) for a resolved one. TIMESTAMP is the alert's event time in
// UTC with microseconds at most. MSGID is the alert's kind (or another
// field, Config.MsgID). The structured data element repeats the alert's
// identity (id, event, device, kind, detector, severity, state, signal)
// for receivers that index structured data; MSG is the alert rendered by
// the injected output.Formatter (CEF, LEEF, JSON…). A MSG that is not
// pure US-ASCII is UTF-8 and starts with the BOM (RFC 5424 §6.4); an
// ASCII one has none, since CEF, LEEF and JSON parsers do not expect it.
// A message longer than Config.MaxMessage has its MSG cut at a UTF-8
// boundary and is counted (Output.Truncated).
//
// # Networks and delivery
//
// Syslog has no acknowledgement: Write returns nil once the batch is in the
// kernel's socket buffer, not once the receiver has it, and nothing ever
// tells the sender what the receiver stored. What follows is therefore the
// honest guarantee per network.
//
//   - tls (default; RFC 5425, port 6514): TCP with TLS, optionally mutual,
//     with octet-counting framing. Alerts may be lost: a connection that
//     breaks after Write returned loses what was still in flight (in the
//     socket buffers, or read by a receiver that died before storing it).
//     Alerts may be duplicated: a failed Write is retried whole after
//     Connect, though the receiver may have got part of the batch. Two
//     cheap measures narrow the loss window: Write first checks, without
//     waiting, whether the receiver has closed the connection since the
//     previous Write (a restart, an idle timeout) and redials instead of
//     writing into a dead socket; and Connect waits briefly after the
//     handshake for the receiver to refuse the client certificate, which
//     TLS 1.3 servers and rsyslog do only after the client's handshake has
//     completed. Receivers that deduplicate can key on the event
//     parameter, which is the same for every copy of an alert transition.
//   - tcp (RFC 6587, historic): the same over plain TCP, with
//     octet-counting or, for legacy receivers, non-transparent (LF)
//     framing, in which line feeds inside a message become spaces.
//   - udp (RFC 5426): one datagram per alert, fire and forget: a datagram
//     can be dropped on the way or by a busy receiver without anyone
//     knowing. Only a local send error is reported, and the alerts not yet
//     sent are retried (an output.BatchError). Use it only where nothing
//     else is accepted.
//
// Acknowledged delivery needs RELP (rsyslog's Reliable Event Logging
// Protocol), which this package does not speak.
//
// Plain tcp and udp are refused to hosts other than loopback unless
// Config.AllowPlaintext is set.
package syslog
