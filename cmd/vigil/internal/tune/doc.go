// Package tune searches detector parameters offline: it replays labelled plant
// logs through the detectors with many parameter settings and scores each
// with detectors/eval, for `vigil tune`.
//
//	ds, err := tune.Load(paths, fopt, dc)              // read and decode once
//	spec, err := tune.LoadSpec("tune.yaml")             // what to vary, what to optimise
//	res, err := tune.Run(ctx, ds, labels, base, spec, tune.RunOptions{Progress: bar})
//	res.WriteTable(os.Stdout)                           // default vs best, Pareto front
//	tune.WriteConfig(f, res, res.Best)                  // a config file for replay and run
//
// # Dataset
//
// Load reads the logs once, merged in event-time order as `vigil replay`
// merges them, decodes every frame with the replay's decoder and keeps the
// good readings in a columnar store: per reading a device index, the event
// time, the status and a topic index, and per signal value a signal index and
// the value. About 21 bytes a reading plus 12 a value (and 8 a reading for
// the evaluation's times): 1,000,000 readings of three signals take about
// 65 MB. The columns hold no pointers, so the garbage collector never scans
// them. Rejected frames are counted by reason, as a replay counts them.
//
// # Trials
//
// A trial is one parameter setting. Trial 0 is the base configuration
// unchanged; the others set every parameter of the spec. A trial's Params are
// the base's detectors section with a YAML mapping built from the dotted
// paths decoded strictly over it, the mechanism the config file uses for the
// detectors sections of classes, so every key the config file accepts can be
// tuned. Classes of the base configuration are kept: each starts from the
// trial's Params and applies its own keys on top, as config.Parse resolves
// them.
//
// A trial runs one detectors.Engine over all readings in stream order. Per-device
// order is all that detection depends on, so its alerts are those of
// `vigil replay` with the same settings (their Seq is the reading's position
// in the dataset). The alerts are scored by eval.Evaluate and the objective is
// taken from the report.
//
// Trials are drawn before any runs, from the seed alone, and each trial is
// deterministic, so a seed gives the same trials, scores and ranking whatever
// the parallelism.
package tune
