package pipeline

import "fmt"

// SignalKind says which physical quantity a signal measures, and so which
// detectors judge it.
type SignalKind uint8

// Signal kinds. Generic covers any numeric field that is not mapped to one of the
// physical kinds.
const (
	Generic SignalKind = iota
	Pressure
	Temperature
	Vibration
)

var kindNames = [...]string{"generic", "pressure", "temperature", "vibration"}

func (k SignalKind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("SignalKind(%d)", k)
}

// Unit is the display unit of the kind's signals: bar, °C, mm/s, or "" for
// generic signals.
func (k SignalKind) Unit() string {
	switch k {
	case Pressure:
		return "bar"
	case Temperature:
		return "°C"
	case Vibration:
		return "mm/s"
	}
	return ""
}

// ParseSignalKind parses the names printed by SignalKind.String.
func ParseSignalKind(s string) (SignalKind, error) {
	for i, n := range kindNames {
		if n == s {
			return SignalKind(i), nil
		}
	}
	return 0, fmt.Errorf("unknown signal kind %q (want one of generic, pressure, temperature, vibration)", s)
}

// Value is one numeric signal of a reading.
type Value struct {
	// Name is the signal's name: the mapped name for configured fields
	// ("pressure"), the field name under data for generic ones. Interned.
	Name string
	Kind SignalKind
	V    float64
}

// NoStatus marks a reading whose message carried no status field.
const NoStatus = -1

// NoLabel marks a reading whose message carried no label.
const NoLabel = -1

// Reading is one decoded telemetry message. Readings are reused: a decoder fills a
// caller-owned Reading, and Values aliases storage the Reading owns.
type Reading struct {
	// Seq is the frame's position in the stream (0-based), assigned by the source
	// stage. It orders alerts deterministically.
	Seq uint64
	// Time is the event time in Unix nanoseconds, taken from the message.
	Time int64
	// Arrival is the receive time in Unix nanoseconds (live) or 0 (replay).
	Arrival int64
	// Device is the node_id, interned by the decoder.
	Device string
	// Topic is the topic the message arrived on, "" when unknown.
	Topic string
	// Status is the device's own health flag (0, 1, 2) or NoStatus.
	Status int8
	// Label is a ground-truth label carried in the message (a CSV label
	// column becomes a top-level "label" field): 1 anomalous, 0 normal, or
	// NoLabel. Detection ignores it; evaluation uses it.
	Label int8
	// Size is the payload size in bytes.
	Size int32
	// Hash is a 64-bit hash of the payload bytes (XXH64, seed 0), set by the
	// decoder: the same payload always has the same hash, in every run, so
	// traffic detectors can recognise a re-sent message deterministically.
	Hash uint64
	// Values holds the numeric signals in payload order.
	Values []Value
	// Shard is the worker shard the device routes to, set by the decode stage.
	Shard int32
}

// Reset clears r for reuse, keeping the capacity of Values.
func (r *Reading) Reset() {
	vals := r.Values[:0]
	*r = Reading{Values: vals, Status: NoStatus, Label: NoLabel}
}
