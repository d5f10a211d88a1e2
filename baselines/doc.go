// Package baselines learns what normal looks like for one signal of one device,
// online, in a few dozen bytes of plain data.
//
// A Stats value holds an exponentially weighted mean and variance (exact running
// values while the sample count is below the half-life), robust median and MAD
// estimates by stochastic approximation (one spike moves them by one small step,
// so it cannot widen the band), and rate-of-change statistics with a slowly
// decaying envelope of the fastest normal change.
//
// A Learner holds the configuration and updates Stats. It never reads the clock:
// the caller passes event times. Samples the caller judged anomalous are kept
// out of the estimates (Observe with learn=false), so an attacker cannot walk
// the baseline to a new normal without raising an alert first; only after
// Config.RelearnAfter consecutive anomalous samples does the baseline adapt.
//
// The package imports nothing from the rest of Vigil, so state can be
// snapshotted and restored by any caller.
package baselines
