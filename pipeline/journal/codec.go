package journal

import (
	"fmt"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/wire"
)

// codecVersion is the version byte that starts every encoded alert.
const codecVersion = 1

// AppendAlert appends the binary form of a to b: a version byte, the
// strings length-prefixed (uvarint), times as varints and the numbers as
// IEEE 754 bits, so an alert comes back exactly as it went in, NaN and
// invalid UTF-8 included.
func AppendAlert(b []byte, a *pipeline.Alert) []byte {
	w := wire.Writer{B: b}
	w.Byte(codecVersion)
	w.Uvarint(a.Seq)
	w.Varint(a.Time)
	w.Varint(a.Started)
	var flags byte
	if a.Escalation {
		flags |= 1
	}
	w.Byte(byte(a.Severity))
	w.Byte(byte(a.State))
	w.Byte(flags)
	for _, s := range [...]string{a.ID, a.Device, a.Topic, a.Kind, a.Detector, a.Signal, a.Unit, a.Message} {
		w.Str(s)
	}
	w.F64(a.Value, a.Threshold, a.Observed, a.Mean, a.Std, a.Score)
	return w.B
}

// DecodeAlert decodes an alert written by AppendAlert.
func DecodeAlert(b []byte, a *pipeline.Alert) error {
	if len(b) == 0 {
		return fmt.Errorf("journal: alert record: %w", wire.ErrShort)
	}
	if b[0] != codecVersion {
		return fmt.Errorf("journal: alert encoding version %d is not supported (want %d)", b[0], codecVersion)
	}
	d := wire.Reader{B: b[1:]}
	*a = pipeline.Alert{}
	a.Seq = d.Uvarint()
	a.Time = d.Varint()
	a.Started = d.Varint()
	sev, st, flags := d.Byte(), d.Byte(), d.Byte()
	a.Severity, a.State, a.Escalation = pipeline.Severity(sev), pipeline.AlertState(st), flags&1 != 0
	for _, p := range [...]*string{&a.ID, &a.Device, &a.Topic, &a.Kind, &a.Detector, &a.Signal, &a.Unit, &a.Message} {
		*p = d.Str()
	}
	d.F64(&a.Value, &a.Threshold, &a.Observed, &a.Mean, &a.Std, &a.Score)
	if d.Err != nil {
		return fmt.Errorf("journal: alert record: %w", d.Err)
	}
	if len(d.B) != 0 {
		return fmt.Errorf("journal: %d unexpected bytes after the alert", len(d.B))
	}
	return nil
}
