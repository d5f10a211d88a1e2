package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// Severity grades an alert.
type Severity uint8

// Severities, in increasing order.
const (
	SeverityNone Severity = iota
	Warning
	Critical
)

func (s Severity) String() string {
	switch s {
	case Warning:
		return "warning"
	case Critical:
		return "critical"
	}
	return "none"
}

// AlertState is the state an alert transition reports. Pending episodes are not
// emitted; an episode is reported when it starts firing, when it escalates, and
// when it resolves.
type AlertState uint8

// Alert states.
const (
	Firing AlertState = iota + 1
	Resolved
)

func (s AlertState) String() string {
	switch s {
	case Firing:
		return "firing"
	case Resolved:
		return "resolved"
	}
	return "inactive"
}

// Alert is one transition of an anomaly episode. See docs/ALERTS.md for the
// schema of its JSON form.
type Alert struct {
	// ID identifies the episode: every transition of one episode has the same ID.
	// It is derived from the device, detector, signal and start time, so a replay
	// produces the same IDs as the live run that saw the same stream.
	ID string
	// Seq is the stream position of the reading that caused the transition. It
	// orders alerts and is not part of the JSON form.
	Seq uint64
	// Time is the event time of the transition, Started that of the episode's
	// first anomalous sample (both Unix nanoseconds).
	Time, Started int64

	Device   string
	Topic    string
	Kind     string // overpressure, thermal, vibration, status, signal, traffic.*
	Detector string // e.g. overpressure.spike
	Severity Severity
	State    AlertState
	Signal   string

	Value     float64 // the statistic the detector compared (see Unit)
	Threshold float64 // the threshold it was compared with, in the same unit
	Unit      string  // unit of Value and Threshold: "bar", "bar/s", "sigma" (CUSUM sums)…
	Observed  float64 // the signal's reading at the transition
	Mean, Std float64 // the learned baseline of the signal at that time
	Score     float64 // how far past the threshold: statistic / threshold
	Message   string  // one human sentence
	// Escalation marks a Firing transition that raises the severity of an
	// episode already reported as firing (an update, not a new alert).
	Escalation bool

	tick bool // raised by a Ticker, not by a reading: ordered after the reading's alerts
}

// AppendJSON appends the alert as one JSON object (no trailing newline). It is
// deterministic: the same alert always yields the same bytes.
func (a *Alert) AppendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, a.ID)
	b = append(b, `,"time":`...)
	b = appendTime(b, a.Time)
	b = append(b, `,"device":`...)
	b = appendString(b, a.Device)
	if a.Topic != "" {
		b = append(b, `,"topic":`...)
		b = appendString(b, a.Topic)
	}
	b = append(b, `,"kind":`...)
	b = appendString(b, a.Kind)
	b = append(b, `,"detector":`...)
	b = appendString(b, a.Detector)
	b = append(b, `,"severity":"`...)
	b = append(b, a.Severity.String()...)
	b = append(b, `","state":"`...)
	b = append(b, a.State.String()...)
	b = append(b, `","signal":`...)
	b = appendString(b, a.Signal)
	b = append(b, `,"value":`...)
	b = appendFloat(b, a.Value)
	b = append(b, `,"threshold":`...)
	b = appendFloat(b, a.Threshold)
	if a.Unit != "" {
		b = append(b, `,"unit":`...)
		b = appendString(b, a.Unit)
	}
	b = append(b, `,"observed":`...)
	b = appendFloat(b, a.Observed)
	b = append(b, `,"baseline":{"mean":`...)
	b = appendFloat(b, a.Mean)
	b = append(b, `,"std":`...)
	b = appendFloat(b, a.Std)
	b = append(b, `},"score":`...)
	b = appendFloat(b, a.Score)
	b = append(b, `,"message":`...)
	b = appendString(b, a.Message)
	b = append(b, `,"started":`...)
	b = appendTime(b, a.Started)
	if a.Escalation {
		b = append(b, `,"escalation":true`...)
	}
	return append(b, '}')
}

// EventID identifies this transition of the episode: the episode ID, the
// state, the event time and the severity. Destinations that deduplicate
// (JetStream's Nats-Msg-Id, an index's document _id, a webhook's idempotency
// key) use it, so a redelivered transition is stored once while the
// transitions of one episode stay distinct.
func (a *Alert) EventID() string {
	b := make([]byte, 0, len(a.ID)+40)
	return string(a.AppendEventID(b))
}

// AppendEventID appends EventID to b.
func (a *Alert) AppendEventID(b []byte) []byte {
	b = append(b, a.ID...)
	b = append(b, '-')
	b = append(b, a.State.String()...)
	b = append(b, '-')
	b = strconv.AppendInt(b, a.Time, 10)
	b = append(b, '-')
	return append(b, a.Severity.String()...)
}

// MarshalJSON implements json.Marshaler with AppendJSON.
func (a Alert) MarshalJSON() ([]byte, error) {
	return a.AppendJSON(nil), nil
}

type alertJSON struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Device   string    `json:"device"`
	Topic    string    `json:"topic"`
	Kind     string    `json:"kind"`
	Detector string    `json:"detector"`
	Severity string    `json:"severity"`
	State    string    `json:"state"`
	Signal   string    `json:"signal"`
	Value    *float64  `json:"value"`
	Thresh   *float64  `json:"threshold"`
	Unit     string    `json:"unit"`
	Observed *float64  `json:"observed"`
	Baseline struct {
		Mean *float64 `json:"mean"`
		Std  *float64 `json:"std"`
	} `json:"baseline"`
	Score      *float64  `json:"score"`
	Message    string    `json:"message"`
	Started    time.Time `json:"started"`
	Escalation bool      `json:"escalation"`
}

// UnmarshalJSON parses the form written by AppendJSON (null numbers become NaN).
func (a *Alert) UnmarshalJSON(data []byte) error {
	var j alertJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	num := func(p *float64) float64 {
		if p == nil {
			return math.NaN()
		}
		return *p
	}
	*a = Alert{
		ID: j.ID, Time: j.Time.UnixNano(), Started: j.Started.UnixNano(),
		Device: j.Device, Topic: j.Topic, Kind: j.Kind, Detector: j.Detector,
		Signal: j.Signal, Value: num(j.Value), Threshold: num(j.Thresh),
		Unit: j.Unit, Observed: num(j.Observed),
		Mean: num(j.Baseline.Mean), Std: num(j.Baseline.Std), Score: num(j.Score),
		Message: j.Message, Escalation: j.Escalation,
	}
	switch j.Severity {
	case "warning":
		a.Severity = Warning
	case "critical":
		a.Severity = Critical
	default:
		return fmt.Errorf("alert: unknown severity %q", j.Severity)
	}
	switch j.State {
	case "firing":
		a.State = Firing
	case "resolved":
		a.State = Resolved
	default:
		return fmt.Errorf("alert: unknown state %q", j.State)
	}
	return nil
}

func appendTime(b []byte, ns int64) []byte {
	b = append(b, '"')
	b = time.Unix(0, ns).UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendFloat writes the shortest representation that round-trips, or null for
// values JSON cannot carry.
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	abs := math.Abs(f)
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		return strconv.AppendFloat(b, f, 'e', -1, 64)
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64)
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string, escaping what RFC 8259
// requires and replacing invalid UTF-8 with U+FFFD.
func AppendJSONString(b []byte, s string) []byte { return appendString(b, s) }

// appendString writes s as a JSON string, escaping what RFC 8259 requires and
// replacing invalid UTF-8 with U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = AppendJSONChars(b, s)
	return append(b, '"')
}

// AppendJSONChars appends the inside of the JSON string s (no quotes),
// escaping what RFC 8259 requires and replacing invalid UTF-8 with U+FFFD.
func AppendJSONChars(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}

// Sink delivers alerts. Write is called from one goroutine and must not retain
// batch after returning; it may block (backpressure) until ctx is done. Close
// flushes and releases resources.
type Sink interface {
	Write(ctx context.Context, batch []Alert) error
	Close() error
}
