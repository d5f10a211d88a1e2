package report

import "github.com/vigil-iot/vigil/pipeline"

// tapped runs a Recorder as the pipeline does for a tap: it observes each
// reading just before the processor.
func tapped(rc *Recorder, p pipeline.Processor) pipeline.Processor { return tapProc{rc, p} }

type tapProc struct {
	rc *Recorder
	p  pipeline.Processor
}

func (t tapProc) Process(r *pipeline.Reading, out []pipeline.Alert) []pipeline.Alert {
	t.rc.Observe(r)
	return t.p.Process(r, out)
}

func (t tapProc) Devices() int { return t.p.Devices() }

var _ pipeline.Tap = (*Recorder)(nil)
