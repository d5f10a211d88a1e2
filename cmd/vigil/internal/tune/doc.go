// Package tune searches detector parameters offline, for `vigil tune`: it
// replays labelled plant logs through the detectors with many parameter
// settings, scores each with detectors/eval and writes the best as a
// configuration file.
//
//	ds, err := tune.Load(paths, fopt, dc)               // read and decode once
//	spec, err := tune.LoadSpec("tune.yaml")             // what to vary, what to maximise
//	res, err := tune.Run(ctx, ds, labels, base, spec, tune.RunOptions{Progress: bar})
//	res.WriteTable(os.Stdout)                           // base vs the rest, Pareto front marked
//	tune.WriteConfig(f, res, res.Best)                  // a config file for replay and run
//
// # Dataset
//
// Load reads the logs once, merged in event-time order as `vigil replay`
// merges them, decodes the frames on GOMAXPROCS goroutines with the replay's
// decoder and keeps the good readings, in stream order, in a columnar store:
// per reading a device index, the event time, the status, the label field and
// a topic index (22 bytes), per signal value a signal index and the value (12
// bytes), and per reading its time again in the evaluation's eval.DataInfo (8
// bytes). A million readings of three signals take 64 MiB. The columns hold
// no pointers, so the garbage collector does not scan them. Rejected frames
// are counted by reason, as a replay counts them.
//
// # Trials
//
// A trial is one parameter setting. Trial 0 is the base configuration
// unchanged; every other trial sets each parameter of the spec. A trial's
// Params are the base's detectors section with a YAML mapping built from the
// dotted paths decoded strictly over it, the mechanism the config file uses
// for the detectors sections of classes, so every key the config file accepts
// can be tuned. The base's classes are kept: each starts from the trial's
// Params and applies its own keys on top, as config.Parse resolves them.
//
// A trial runs one detectors.Engine over all readings in stream order.
// Detection depends only on each device's order, so the alerts are those of
// `vigil replay` with the same settings (their Seq is the reading's position
// in the dataset). eval.Evaluate scores them, and the objective is taken from
// its report.
//
// Trials are drawn before any runs, from the seed alone, and each trial is
// deterministic, so a seed gives the same trials, scores and ranking whatever
// the parallelism. Ties in the objective go to fewer false alarms, then to
// the earlier trial, so the base wins a tie.
package tune
