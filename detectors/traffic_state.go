package detectors

import (
	"math"
)

// TrafficState is what Vigil learns about how one device talks, and one
// alert episode per traffic reason. Plain data, compact: it is kept for every
// device (see TestDeviceSize).
type TrafficState struct {
	Episodes [numTraffic]Episode
	// LastArrival is the arrival time of the last message (Unix ns), MaxTime
	// the latest event time the device has sent.
	LastArrival, MaxTime int64
	// Hashes are the low 32 bits of the hashes of the last four payloads.
	Hashes [4]uint32
	// Interval is the learned typical time between messages (s, a winsorized
	// EW mean of arrival intervals); Rate the EW message rate over the flood
	// window (1/s); Offset the learned event time minus arrival time (s).
	Interval, Rate, Offset float32
	// FieldsAny and FieldsAll are the fields seen in any, and in every,
	// learned message: bit i for the device's signal i (i < 31), bit 31 for
	// the status flag.
	FieldsAny, FieldsAll uint32
	// SizeLo and SizeHi are the learned range of payload sizes (bytes,
	// saturating at 65535).
	SizeLo, SizeHi uint16
	// Topics are 16-bit hashes of the topics learned during warm-up.
	Topics [2]uint16
	// N counts the messages learned; Gated the consecutive messages kept
	// from learning.
	N, Gated uint16
	// Malformed is the EW fraction of rejected payloads, in 1/65536.
	Malformed uint16
	// ClockRate is log2 of the learned rate of the device's clock against
	// arrival time, in 1/1024 (0: in step; a simulator running plant time
	// 20× faster: about 4424), so Offset is extrapolated between messages.
	ClockRate int16
	// Order records, in bit i, whether the i-th last message was behind the
	// device's latest timestamp.
	Order uint8
	// Doubled counts consecutive messages at about twice the learned rate.
	Doubled uint8
	// Burst counts the messages since the last that arrived after a gap
	// (burstGap or more): the rest of the current burst.
	Burst uint16
	Flags TrafficFlags
}

// TrafficFlags are the flags of a TrafficState.
type TrafficFlags uint16

// Traffic flags. The top two bits hold the position of the next payload hash.
const (
	TrafficRogue      TrafficFlags = 1 << iota // first seen after the learning period
	TrafficDenied                              // not on the class's allow-list
	TrafficManyTopics                          // more topics than learned slots: topic check off
	TrafficNoDup                               // repeats payloads normally: duplicate check off
	TrafficDupSeen                             // one duplicate seen during warm-up
	TrafficForeign                             // the current topic was not learned
	TrafficMismatch                            // the current topic names another device
	TrafficQueued                              // in the engine's silence queue
	TrafficGone                                // evicted from the engine

	trafficHashShift = 14
)

// warm reports whether the traffic profile has learned from warmup messages.
func (ts *TrafficState) warm(warmup int) bool { return int(ts.N) >= warmup }

// fastArrival: after warm-up, an interval shorter than this fraction of the
// learned one does not teach it. With ±20 % timing jitter on each message,
// about 3 % of normal intervals fall below it.
const fastArrival = 0.7

// burstGap: messages arriving less than this apart arrived together (one
// read of a busy broker's stream, or equal stream clocks in replay).
const burstGap = 0.5e-3 // s

// clockInStep: a learned clock rate within 2^±0.1 (±7 %) of arrival time is
// taken as exactly in step, so noise in its estimate is not extrapolated over
// long gaps; the offset's own learning follows slow drift.
const clockInStep = 102

// learnClockRate moves the log2 clock rate lr (in 1/1024) towards the
// observed rate q (event-time progress over arrival-time progress) with gain
// g: during warm-up a running mean, then by at most one octave per message.
func learnClockRate(lr int16, q, g float64, warm bool) int16 {
	var lq float64
	if q > 0.95 && q < 1.05 {
		lq = (q - 1) * (1024 / math.Ln2) // log2 near 1, without the call
	} else {
		lq = math.Log2(max(q, 1e-9)) * 1024
	}
	cur := float64(lr)
	if warm {
		lq = min(max(lq, cur-1024), cur+1024)
	}
	return int16(min(max(math.Round(cur+g*(lq-cur)), math.MinInt16), math.MaxInt16))
}

// statusField is the field bit of the status flag.
const statusField = 1 << 31
