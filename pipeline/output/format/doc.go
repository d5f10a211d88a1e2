// Package format renders alerts in the formats SIEMs ingest: Vigil's native
// JSON, ArcSight CEF, QRadar LEEF 2.0, the Elastic Common Schema (ECS) and
// an OCSF Detection Finding. Each is an output.Formatter, independent of the
// transport that carries it (syslog, a file, HTTP, a broker).
//
// Every formatter appends one event to the caller's buffer without a
// trailing newline, is deterministic (the same alert gives the same bytes),
// allocates nothing once the buffer has grown (pinned by TestAllocs), and
// is safe for one goroutine at a time. Build one by name with ByName or New
// (Config selects json, cef, leef, ecs or ocsf and the LEEF delimiter), or
// directly with NewCEF, NewLEEF, NewECS, NewOCSF. output.Meta names Vigil:
// empty Vendor and Product default to "Vigil", an empty Version to "devel".
//
// # Severity
//
// One convention across formats, so a SIEM rule means the same thing
// whichever format feeds it:
//
//	transition          CEF Severity, LEEF sev, ECS event.severity   OCSF severity_id
//	firing warning      6                                            3 Medium
//	firing critical     9                                            5 Critical
//	resolved            3                                            kept (3 or 5), status_id 4 Resolved
//
// An escalation is a firing transition and takes the new grade.
// The transition itself is CEF act, LEEF act, ECS event.action: firing,
// escalation or resolved; in OCSF it is the activity: Create (type_uid
// 200401) for a first firing, Update (200402) for an escalation, Close
// (200403) for resolved, always with finding_info.uid = the episode ID.
//
// # Text and escaping
//
// All formats write UTF-8 and replace each invalid byte with U+FFFD.
//
// CEF (CEF:0, after the ArcSight CEF Implementation Standard): header fields
// escape backslash and pipe (\\, \|), and CR or LF, which no header may hold,
// become spaces; extension values escape backslash, equals, CR and LF (\\,
// \=, \r, \n), and pipes stay as they are. Values longer than the
// standard's limits are cut at a rune boundary: Vendor and Product 63,
// Version 31, Signature ID 1023, Name 512, act 63, cat 1023, dvchost 100,
// deviceExternalId 255, externalId 40, msg 1023, cs1–cs6 4000 (limits in
// bytes, which is stricter than the standard's characters). Keys with an
// empty value or a NaN/±Inf number are left out. act is always the last
// key, because CEF does not keep trailing spaces of the last value.
//
// LEEF 2.0 defines no escapes for values. Vigil writes backslash as \\, CR
// as \r, LF as \n and the delimiter as \t (tab) or \xHH / \uHHHH, so the
// delimiter, CR and LF never occur raw in a value and a consumer that
// splits on the delimiter never cuts one; '=' is not escaped (keys are fixed
// words and never hold it, values are read up to the next delimiter).
// Header fields escape backslash and pipe like CEF. The delimiter defaults
// to ^; the header names it as itself when it is printable ASCII, else in
// hex (0x09). Letters, digits, - + . : ' (all found in times and numbers),
// = \ | CR LF and NUL cannot be delimiters.
//
// ECS and OCSF are JSON documents: strings are escaped per RFC 8259, NaN and
// ±Inf numbers are left out (OCSF observation values, which the schema
// types as strings, spell them "NaN", "+Inf", "-Inf").
//
// # Field mapping
//
// docs/SIEM.md has one table per format and an example of each.
// In brief: CEF Signature ID and LEEF EventID are the detector; the CEF
// Name is "<detector> on <signal>"; times are epoch milliseconds in CEF
// (rt, start, end), ISO 8601 with devTimeFormat (LEEFTimeFormat) in LEEF,
// RFC 3339 in ECS and epoch milliseconds in OCSF. The plant device is CEF
// deviceExternalId, LEEF device, ECS device.id and OCSF device (type IOT);
// the episode ID is CEF externalId, LEEF alertId, ECS vigil.alert_id and
// OCSF finding_info.uid; the transition's ID (Alert.EventID) is CEF cs5,
// LEEF eventId, ECS event.id and OCSF metadata.uid. OCSF events follow
// schema version OCSFVersion, checked in the tests against the published
// schema files in testdata.
package format
