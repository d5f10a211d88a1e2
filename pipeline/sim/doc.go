// Package sim simulates a plant fleet: it generates deterministic telemetry in
// the format the devices of the test rig publish, and labels the anomalies it
// injected, so detectors can be scored against ground truth.
//
// A message is one JSON object, fields always in this order and without spaces:
//
//	{"timestamp":"2026-11-21T10:00:00.123Z","node_id":"sensor-node-01","data":{"p":4.21,"t":61.3,"v":2.7},"status":0}
//
// p is pressure (bar), t temperature (°C) and v vibration (mm/s RMS), each
// rounded to two decimals and printed in the shortest form ("61.3", not
// "61.30"); status is the device's health flag (0 normal, 1 warning,
// 2 critical). Devices are named sensor-node-01, sensor-node-02, … (more digits
// when the fleet has more than 99) and publish on
// plant/<line>/<node_id>/telemetry, eight devices per line (line-a, line-b, …).
//
// # Generator
//
// A Generator is a pull-based iterator: Next returns the fleet's messages in
// timestamp order, computing each from the device's state. It never reads the
// wall clock, keeps a few hundred bytes per device, and does not allocate once
// warm. Everything is derived from Config.Seed and the device's index: a
// device's operating point, timing and noise do not depend on the size of the
// fleet or on which devices are anomalous, and a shorter run is a prefix of a
// longer one.
//
// # Physics
//
// Each device has an operating point p0 ∈ [3, 6] bar, t0 ∈ [45, 75] °C and
// v0 ∈ [1, 2.8] mm/s, and Gaussian noise σp = 1.5 % of p0, σt = 0.25 °C,
// σv = 4 % of v0, truncated at ±5σ. On top of the noise each signal follows a
// slow sinusoid of amplitude 1σ and period 10–20 minutes. A clean device's
// values therefore stay within 6σ of the operating point (plus 0.005 rounding).
//
// A device publishes every Config.Interval, at its own phase within the
// interval, with up to ±20 ms of jitter (at most a quarter of the interval, so
// a device's messages never reorder). Timestamps have millisecond resolution.
//
// # Injected anomalies
//
// Only the Config.Anomalous devices, spread evenly over the fleet, get
// anomalies, and none before Config.LeadIn has passed. From then on time is
// divided into cycles of Config.Cycle. In each cycle a device injects, with
// probability Config.InjectProb and at a random offset, the kind whose turn it
// is (the cycle index plus a per-device offset, modulo 3):
//
//	kind          detail       shape                                     size relative to noise
//	overpressure  spike        p rises over 1–2 s to p0×(1.35–1.6),      +23σp to +40σp
//	                           holds 4–8 s, falls over 1–2 s
//	thermal       fluctuation  t += a·sin(2πΔ/T), a = 2.5–4 °C,          ±10σt to ±16σt
//	                           T = 4–8 s, for 20–30 s
//	vibration     jump         v jumps to (2.2–3)×v0 for 15–25 s, with   +30σv to +50σv,
//	                           extra noise of σ = 2σv                    noise ×2.2
//
// With Config.Drifts, two anomalous devices (one when only one is anomalous)
// each drift once, starting one or two cycles after the lead-in, and skip the
// cycle injections while drifting:
//
//	thermal       drift        t rises linearly by 8–12 °C over 8–12     +32σt to +48σt at the
//	                           min (2.7–6σt per minute), then           peak
//	                           returns over 1 min (cooling failure)
//	vibration     wear         v rises linearly to 2.5×v0 over 10 min    +37.5σv at the peak
//	                           (3.75σv per minute), then returns over
//	                           1 min
//
// With Config.Faults, one anomalous device reports status 2 for 10 s once, in
// one of the first five cycles after the lead-in (or right after its drift),
// while its values stay normal (kind status, detail fault). Status is 0 in
// every other message.
//
// With Config.Traffic, traffic scenarios change how devices talk instead of
// what they measure, each once, after the lead-in, on its own device (chosen
// among those without value anomalies when there are enough): a flood (20×
// the rate for 20 s), a silence (60 s), a replay (20 s of the device's own
// messages from a minute before, byte for byte), a spoof (a second stream
// under the device's node_id for 60 s, half an interval out of phase, its
// clock 3.7 s behind, on the next line's topic) and a rogue device (the next
// node_id, from then on). They are labelled with kind "traffic" and the
// reason of the traffic alert that should catch them (flood, silence,
// replay, identity, rogue). Replayed and spoofed messages carry their own
// timestamps, so Next is then not in timestamp order for those devices.
//
// # Cycles, relations and rhythm (off by default)
//
// Config.Cycles adds a sinusoid per signal, its period and amplitude (in σ
// of the signal's noise, or absolute) drawn per device from a range, its
// phase random per device or fixed; Cycles.Daily a 24-hour load cycle
// peaking at 14:00 UTC; Cycles.Rhythm a change of period on some devices at
// a given time (label kind "rhythm", detail "period", covering 8 periods
// after the change). Config.Relation makes the signals follow a common load,
// a unit-variance Ornstein–Uhlenbeck process per device, with per-signal
// couplings; with Relation.Breaks the anomalous devices take a fourth kind in
// turn, a relation break: for 50–80 s one coupled signal follows a load of
// its own that starts across the mean, while every signal stays in its
// normal band (label kind "process.relation", detail the signal that broke
// away). ApplyProfile turns on realistic sets ("cyclic", "related",
// "rhythm"). These draw from their own random streams: with them off, every
// message is the same as before they existed, and with them on, each
// device's noise and injection times stay as they were (Relation.Breaks adds
// a fourth kind to the rotation).
//
// Injections never overlap on a device; more than 4 s separate them. A
// Label covers an injection from the first to the last sample it changed; the
// samples outside labels are exactly those the device would publish were it
// clean.
package sim
