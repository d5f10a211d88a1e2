package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/vigil-iot/vigil/pipeline"
)

// codecVersion is the version byte that starts every encoded alert.
const codecVersion = 1

// AppendAlert appends the binary form of a to b: a version byte, the
// strings length-prefixed (uvarint), times as varints and the numbers as
// IEEE 754 bits, so an alert comes back exactly as it went in, NaN and
// invalid UTF-8 included.
func AppendAlert(b []byte, a *pipeline.Alert) []byte {
	b = append(b, codecVersion)
	b = binary.AppendUvarint(b, a.Seq)
	b = binary.AppendVarint(b, a.Time)
	b = binary.AppendVarint(b, a.Started)
	var flags byte
	if a.Escalation {
		flags |= 1
	}
	b = append(b, byte(a.Severity), byte(a.State), flags)
	for _, s := range [...]string{a.ID, a.Device, a.Topic, a.Kind, a.Detector, a.Signal, a.Unit, a.Message} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, f := range [...]float64{a.Value, a.Threshold, a.Observed, a.Mean, a.Std, a.Score} {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
	}
	return b
}

var errShort = errors.New("journal: alert record too short")

// DecodeAlert decodes an alert written by AppendAlert.
func DecodeAlert(b []byte, a *pipeline.Alert) error {
	if len(b) == 0 {
		return errShort
	}
	if b[0] != codecVersion {
		return fmt.Errorf("journal: alert encoding version %d is not supported (want %d)", b[0], codecVersion)
	}
	d := decoder{b: b[1:]}
	*a = pipeline.Alert{}
	a.Seq = d.uvarint()
	a.Time = d.varint()
	a.Started = d.varint()
	sev, st, flags := d.byte(), d.byte(), d.byte()
	a.Severity, a.State, a.Escalation = pipeline.Severity(sev), pipeline.AlertState(st), flags&1 != 0
	for _, p := range [...]*string{&a.ID, &a.Device, &a.Topic, &a.Kind, &a.Detector, &a.Signal, &a.Unit, &a.Message} {
		*p = d.string()
	}
	for _, p := range [...]*float64{&a.Value, &a.Threshold, &a.Observed, &a.Mean, &a.Std, &a.Score} {
		*p = math.Float64frombits(d.uint64())
	}
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("journal: %d unexpected bytes after the alert", len(d.b))
	}
	return nil
}

// decoder reads the fields of AppendAlert; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errShort
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uint64() uint64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
