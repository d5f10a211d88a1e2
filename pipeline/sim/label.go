package sim

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"
)

// Label kinds, named like the detectors that should catch them.
const (
	KindOverpressure = "overpressure"
	KindThermal      = "thermal"
	KindVibration    = "vibration"
	KindStatus       = "status"
	// KindRelation labels a relation break (Relation.Breaks): one signal
	// stopped following the others while each stayed in its own band. Its
	// detail names the signal that broke away: pressure, temperature or
	// vibration.
	KindRelation = "process.relation"
	// KindRhythm labels a change of the cycles' period (Cycles.Rhythm), as
	// the signal.rhythm alert that should report it.
	KindRhythm = "rhythm"
)

// Label details: which injection of its kind a label records.
const (
	DetailSpike       = "spike"       // overpressure in one cycle
	DetailFluctuation = "fluctuation" // thermal oscillation in one cycle
	DetailJump        = "jump"        // vibration jump in one cycle
	DetailDrift       = "drift"       // thermal drift of a cooling failure
	DetailWear        = "wear"        // vibration rising with mechanical wear
	DetailFault       = "fault"       // status 2 reported by the device
	DetailPeriod      = "period"      // the cycles changed their period
)

// Label records one injected anomaly: the device, its kind and detail, and the
// times of the first and last sample it changed. Its JSON form is the one
// WriteLabels writes, so json.Unmarshal reads a label file into a []Label.
type Label struct {
	Device string    `json:"device"`
	Kind   string    `json:"kind"`
	Detail string    `json:"detail"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
}

// WriteLabels writes labels as a JSON list, one label per line.
func WriteLabels(w io.Writer, labels []Label) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("[")
	for i := range labels {
		b, err := json.Marshal(&labels[i])
		if err != nil {
			return fmt.Errorf("sim: encode label %d: %w", i, err)
		}
		if i > 0 {
			bw.WriteString(",")
		}
		bw.WriteString("\n")
		bw.Write(b)
	}
	if len(labels) > 0 {
		bw.WriteString("\n")
	}
	bw.WriteString("]\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("sim: write labels: %w", err)
	}
	return nil
}

// sortLabels orders labels by start, then device, then kind.
func sortLabels(labels []Label) {
	slices.SortFunc(labels, func(a, b Label) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Device, b.Device),
			cmp.Compare(a.Kind, b.Kind))
	})
}
