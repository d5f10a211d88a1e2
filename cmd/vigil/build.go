package main

import (
	"log/slog"

	"github.com/vigil-iot/vigil/cmd/vigil/internal/config"
	"github.com/vigil-iot/vigil/detectors"
	"github.com/vigil-iot/vigil/pipeline"
)

// detection is what run, demo and replay judge with, built in one place
// from one configuration: the detector set, the fleet judge, one engine per
// shard sharing the device cap, all restored from learned state when there
// is some, and the stream position to continue from. (tune builds its
// trials' engines from the same detectors.Config, cfg.DetectorConfig.)
type detection struct {
	set     *detectors.Set
	fleet   *detectors.Fleet // nil when the fleet judge is off; a reload may replace it
	engines []*detectors.Engine
	devCap  *detectors.DeviceCap
	resume  pipeline.Position
}

// buildDetection builds the detection of cfg for workers shards and
// restores learned into it (when not nil), logging what it restored.
func buildDetection(cfg *config.File, workers int, learned *learnedState, log *slog.Logger) (*detection, error) {
	set, err := detectors.New(cfg.DetectorConfig())
	if err != nil {
		return nil, err
	}
	d := &detection{
		set:     set,
		fleet:   set.NewFleet(),
		engines: make([]*detectors.Engine, workers),
		devCap:  detectors.NewDeviceCap(cfg.Pipeline.MaxDevices), // the total, shared by the shards
	}
	for i := range d.engines {
		d.engines[i] = set.NewEngine()
		d.engines[i].ShareCap(d.devCap)
	}
	if learned == nil {
		return d, nil
	}
	if err := learned.restoreFleet(d.fleet); err != nil {
		return nil, err
	}
	var restored detectors.RestoreReport
	for i, eng := range d.engines {
		if err := learned.restoreEngine(eng, i, workers, &restored); err != nil {
			return nil, err
		}
	}
	d.resume = learned.pos
	logRestore(log, learned, restored)
	return d, nil
}

// pipelineConfig returns the pipeline's configuration for d: the shards'
// engines, the fleet judge (read through d.fleet, which a reload replaces
// on the merge stage's goroutine, the one that calls it) and its snapshot,
// the position to resume from, and cfg's pipeline and decoder settings.
func (d *detection) pipelineConfig(cfg *config.File, dc pipeline.DecoderConfig, log *slog.Logger) pipeline.Config {
	return pipeline.Config{
		Workers:      len(d.engines),
		Decoders:     cfg.Pipeline.Decoders,
		BatchSize:    cfg.Pipeline.BatchSize,
		Decoder:      dc,
		NewProcessor: func(i int) pipeline.Processor { return d.engines[i] },
		Fleet: func(clock int64, n int, out []pipeline.Alert) []pipeline.Alert {
			if d.fleet == nil {
				return out
			}
			return d.fleet.Judge(clock, n, out)
		},
		FleetSnapshot: func() []byte {
			if d.fleet == nil {
				return nil
			}
			return d.fleet.AppendState(nil)
		},
		Resume:       d.resume,
		DrainTimeout: cfg.Pipeline.DrainTimeout,
		Logger:       log,
	}
}
