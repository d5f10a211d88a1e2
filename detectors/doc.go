// Package detectors judges telemetry readings against learned baselines and
// turns anomalies into alert episodes.
//
// Each signal kind has a SignalDetector: Overpressure (pressure), Thermal
// (temperature), Vibration and Signal (any other numeric field). A detector runs
// a few checks (an absolute limit, a spike above the learned band, a CUSUM for
// sustained shifts, a rate-of-change limit, a short-window variance); each check
// yields a Verdict whose Score is 1 at its threshold. Detectors are pure
// functions of (sample, state): no I/O, no goroutines, no clock.
//
// Cycle-aware baselines (cycle.go): per signal, a fixed ring of time bins is
// searched now and then for a dominant period (autocorrelation by FFT); a
// significant one becomes a learned phase profile (CycleState), and the
// spike, drift, fluctuation and rate checks then judge the residual from it.
// A signal without a cycle is judged exactly as without this; a change of
// rhythm raises a signal.rhythm alert.
//
// Every check has its own Episode, the alert lifecycle inactive → pending →
// firing → resolved, with a hold (consecutive anomalous samples before firing),
// a clear count and hysteresis, stepped by event time.
//
// The traffic detectors (traffic.go) judge how a device talks rather than
// what it measures: its message interval and rate, topics, fields, payload
// size, clock offset and the order of its timestamps are learned per device
// (TrafficState), and departures raise alerts of kind traffic.flood, silence,
// rogue, identity, replay, clock and schema. Silence is judged by
// Engine.Tick on the stream clock; Fleet judges bursts of new device IDs
// (traffic.spray).
//
// An Engine holds the state of the devices of one pipeline shard (Device,
// SignalState: plain, serialisable data) and is used by one goroutine. A Set is
// the compiled, shared configuration: default parameters and device classes.
package detectors
