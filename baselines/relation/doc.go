// Package relation learns, per device, how its signals move together, and
// flags readings that break the learned relation even when every signal stays
// inside its own band.
//
// The univariate baselines (package baselines) judge each signal alone: a
// pump whose pressure rises while its current and vibration stay put is, to
// them, three normal signals. This package keeps, for the k signals of one
// device (2 ≤ k ≤ MaxSignals), an exponentially weighted mean and covariance
// and, refreshed every Config.Refresh learned readings, a principal component
// model of their correlation matrix (the signals standardised, so units do
// not matter). Each complete reading gets two statistics:
//
//   - Hotelling's T² on the retained components (those explaining
//     Config.Variance of the variance, at least 1 and at most k−1): how far the
//     reading is along the directions the device normally moves in, in units of
//     their learned variance. It flags a joint excursion far outside the
//     learned distribution.
//   - The squared prediction error (SPE, Q) in the residual subspace: how far
//     the reading is from the plane the signals normally lie on. It flags a
//     broken relation: pressure up while the flow that drives it did not move.
//
// Each statistic has a control limit at the configured false-alarm rate
// (Config.Alpha): T² by the F distribution with the estimator's effective
// sample size, SPE by Box's scaled chi-square g·χ²_h with the moments of the
// discarded eigenvalues (the approximation behind Jackson and Mudholkar's
// limit). Real telemetry is heavier-tailed than Gaussian, so each limit is
// also computed from the EW mean and variance of the statistic observed on
// learned readings (moment-matched g·χ²_h, Nomikos and MacGregor), and the
// larger of the two is used: never tighter than Gaussian theory, wider where
// the device's own data say so. A score is the distance relative to its limit,
// √(stat/limit): 1 at the limit, 2 (critical) at twice the distance, as the
// univariate checks grade theirs.
//
// Contribution analysis names the signals behind an anomaly: per signal, its
// share of T² (the complete decomposition of Alcalá and Qin, non-negative and
// summing to T²) and of SPE (its squared standardised residual), and its
// expected value given all the others, E[x_i | x_−i], with the conditional
// standard deviation. The signal furthest from its conditional expectation (in
// conditional standard deviations, the reconstruction-based contribution to
// the full Mahalanobis distance) is the one named for a broken relation: for a
// fault in one signal it is provably that signal, where squared residuals can
// smear onto its partners. It is named whenever it is beyond the two-sided
// normal quantile at Alpha (Result.Broken), even when T² carries the break (a
// retained minor component can); otherwise, for a move along the learned
// relation, the largest T² share is named.
//
// Poisoning guard, as in package baselines: a reading that scores at or above
// Config.LearnBelow (the limit) does not teach, so a broken relation cannot
// become the new normal without raising an alert; below it, a reading scoring
// above Config.Clip (0.7) teaches as one at Clip would (a Huber-type,
// winsorised update), so readings near the limit teach little. The moments
// behind the limits see the raw statistics, so the slight shrinkage of a
// winsorised covariance widens the limits back. After Config.RelearnAfter
// consecutive readings kept out, the model learns again, winsorised, at a
// bounded pace. A relation that changes slowly (over a few hundred readings)
// is learned like any slow change of an EW estimator. Until Config.Warmup
// readings have been learned the model only learns.
//
// Time: forgetting counts readings, not seconds (as the baselines do), so
// irregular timing does not matter and a device that lies about its clock
// cannot speed it up; event times only time the warm-up. A reading with a
// missing, non-finite or absurd (beyond ±1e100) signal is neither judged nor
// learned (judging on a
// subset would need another decomposition per pattern of missing signals). A
// constant signal is regularised: its spread is floored (Config.MinSpread,
// RelSpread) and its correlation entries shrunk so the matrix stays positive
// definite; eigenvalues are floored at 1e-4.
//
// The eigen-decomposition is a cyclic Jacobi on fixed 8×8 arrays on the
// stack: for k ≤ 8 it is as accurate and as fast as gonum's mat.EigenSym (the
// tests and benchmarks compare them) and, unlike it, allocates nothing, so
// Judge, Update and Observe allocate nothing ever. Limits use gonum's
// stat/distuv quantiles: the F quantiles once per Model, the chi-square ones
// at refresh.
//
// Per reading the caller runs Judge, then Update (Observe when it decides
// itself whether the reading teaches).
//
// A Model holds the configuration and is shared; a State is the plain data of
// one device (a few hundred bytes for k = 3), versioned binary encoding via
// AppendBinary and UnmarshalBinary.
package relation
