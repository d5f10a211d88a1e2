package pipeline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
	"unsafe"
)

const canonical = `{"timestamp":"2026-11-21T10:00:00.123Z","node_id":"sensor-node-01","data":{"p":4.21,"t":61.3,"v":2.7},"status":0}`

const testTopic = "plant/line-1/sensor-node-01"

var canonicalValues = []Value{
	{Name: "pressure", Kind: Pressure, V: 4.21},
	{Name: "temperature", Kind: Temperature, V: 61.3},
	{Name: "vibration", Kind: Vibration, V: 2.7},
}

// utcNanos is time.Date(...).UnixNano() in UTC.
func utcNanos(y int, mo time.Month, d, h, mi, s, ns int) int64 {
	return time.Date(y, mo, d, h, mi, s, ns, time.UTC).UnixNano()
}

// zoneNanos is time.Date(...).UnixNano() in a fixed zone offset seconds east of UTC.
func zoneNanos(y int, mo time.Month, d, h, mi, s, ns, offset int) int64 {
	return time.Date(y, mo, d, h, mi, s, ns, time.FixedZone("", offset)).UnixNano()
}

var canonicalTime = utcNanos(2026, 11, 21, 10, 0, 0, 123e6)

// withTimestamp returns a message with the given raw JSON timestamp value.
func withTimestamp(ts string) string {
	return `{"timestamp":` + ts + `,"node_id":"n1","data":{"p":1.5}}`
}

// nested returns depth nested arrays around inner.
func nested(depth int, inner string) string {
	return strings.Repeat("[", depth) + inner + strings.Repeat("]", depth)
}

func TestDecodeGood(t *testing.T) {
	p15 := []Value{{Name: "pressure", Kind: Pressure, V: 1.5}}
	tests := []struct {
		name    string
		cfg     DecoderConfig
		in      string
		arrival int64
		device  string
		time    int64
		status  int8
		values  []Value
	}{
		{name: "canonical", in: canonical, device: "sensor-node-01", time: canonicalTime, status: 0, values: canonicalValues},
		{
			name:   "fields reordered",
			in:     `{"status":2,"data":{"v":2.7,"p":4.21,"t":61.3},"node_id":"sensor-node-01","timestamp":"2026-11-21T10:00:00.123Z"}`,
			device: "sensor-node-01", time: canonicalTime, status: 2,
			values: []Value{canonicalValues[2], canonicalValues[0], canonicalValues[1]},
		},
		{
			name: "extra fields and nested junk skipped",
			in: `{"fw":"1.2.3","meta":{"site":{"id":[1,2,{"x":null}]},"ok":true,"list":[[],{},[{}]]},` +
				`"timestamp":"2026-11-21T10:00:00.123Z","seq":-1.5e3,"flags":[true,false,null,"a\"]}"],` +
				`"node_id":"sensor-node-01","data":{"p":4.21,"t":61.3,"v":2.7},"status":0,"empty":{}}`,
			device: "sensor-node-01", time: canonicalTime, status: 0, values: canonicalValues,
		},
		{
			name: "unmapped data junk skipped",
			in: `{"timestamp":"2026-11-21T10:00:00.123Z","node_id":"sensor-node-01",` +
				`"data":{"unit":"bar","p":4.21,"cal":{"a":[1,2]},"t":61.3,"ok":true,"arr":[1],"v":2.7}}`,
			device: "sensor-node-01", time: canonicalTime, status: NoStatus, values: canonicalValues,
		},
		{
			name:   "generic signals",
			in:     `{"timestamp":"2026-11-21T10:00:00.123Z","node_id":"sensor-node-01","data":{"p":4.21,"rpm":1500,"t":61.3,"flow_m3h":-0.25}}`,
			device: "sensor-node-01", time: canonicalTime, status: NoStatus,
			values: []Value{
				{Name: "pressure", Kind: Pressure, V: 4.21},
				{Name: "rpm", Kind: Generic, V: 1500},
				{Name: "temperature", Kind: Temperature, V: 61.3},
				{Name: "flow_m3h", Kind: Generic, V: -0.25},
			},
		},
		{
			name:   "generic signals ignored",
			cfg:    DecoderConfig{IgnoreUnmapped: true},
			in:     `{"timestamp":"2026-11-21T10:00:00.123Z","node_id":"sensor-node-01","data":{"p":4.21,"rpm":1500,"t":61.3,"flow_m3h":-0.25}}`,
			device: "sensor-node-01", time: canonicalTime, status: NoStatus,
			values: []Value{{Name: "pressure", Kind: Pressure, V: 4.21}, {Name: "temperature", Kind: Temperature, V: 61.3}},
		},
		{
			name:   "custom signal map",
			cfg:    DecoderConfig{Signals: map[string]SignalSpec{"pressure_bar": {Name: "pressure", Kind: Pressure}}},
			in:     `{"timestamp":"2026-11-21T10:00:00.123Z","node_id":"n","data":{"pressure_bar":4.21,"p":1}}`,
			device: "n", time: canonicalTime, status: NoStatus,
			values: []Value{{Name: "pressure", Kind: Pressure, V: 4.21}, {Name: "p", Kind: Generic, V: 1}},
		},
		{
			name:   "null data values skipped",
			in:     `{"timestamp":"2026-11-21T10:00:00.123Z","node_id":"sensor-node-01","data":{"p":null,"t":61.3,"x":null,"v":null},"status":1}`,
			device: "sensor-node-01", time: canonicalTime, status: 1,
			values: []Value{{Name: "temperature", Kind: Temperature, V: 61.3}},
		},
		{
			name:   "duplicate data key last wins",
			in:     `{"timestamp":"2026-11-21T10:00:00.123Z","node_id":"n","data":{"p":1,"t":2,"p":3}}`,
			device: "n", time: canonicalTime, status: NoStatus,
			values: []Value{{Name: "pressure", Kind: Pressure, V: 3}, {Name: "temperature", Kind: Temperature, V: 2}},
		},
		{
			name:   "status absent",
			in:     `{"timestamp":"2026-11-21T10:00:00.123Z","node_id":"sensor-node-01","data":{"p":4.21,"t":61.3,"v":2.7}}`,
			device: "sensor-node-01", time: canonicalTime, status: NoStatus, values: canonicalValues,
		},
		{
			name:   "status null",
			in:     `{"timestamp":"2026-11-21T10:00:00.123Z","node_id":"n","data":{"p":1.5},"status":null}`,
			device: "n", time: canonicalTime, status: NoStatus, values: p15,
		},
		{
			name:   "status only",
			in:     `{"timestamp":"2026-11-21T10:00:00.123Z","node_id":"n","status":2}`,
			device: "n", time: canonicalTime, status: 2,
		},
		{
			name:   "status only with null data",
			in:     `{"timestamp":"2026-11-21T10:00:00.123Z","node_id":"n","data":null,"status":1}`,
			device: "n", time: canonicalTime, status: 1,
		},
		{name: "status 1e0", in: `{"timestamp":"2026-11-21T10:00:00.123Z","node_id":"n","status":1e0}`, device: "n", time: canonicalTime, status: 1},
		{name: "status -0", in: `{"timestamp":"2026-11-21T10:00:00.123Z","node_id":"n","status":-0}`, device: "n", time: canonicalTime, status: 0},
		{
			name:   "node_id unicode escape",
			in:     `{"timestamp":"2026-11-21T10:00:00.123Z","node_id":"caf\u00e9-01","data":{"p":1.5}}`,
			device: "café-01", time: canonicalTime, status: NoStatus, values: p15,
		},
		{
			name:   "node_id quote and slash escapes",
			in:     `{"timestamp":"2026-11-21T10:00:00.123Z","node_id":"a\"b\\c\/d","data":{"p":1.5}}`,
			device: `a"b\c/d`, time: canonicalTime, status: NoStatus, values: p15,
		},
		{
			name:   "node_id surrogate pair",
			in:     `{"timestamp":"2026-11-21T10:00:00.123Z","node_id":"pump-\ud83d\ude00","data":{"p":1.5}}`,
			device: "pump-😀", time: canonicalTime, status: NoStatus, values: p15,
		},
		{
			name:   "node_id lone surrogate becomes U+FFFD",
			in:     `{"timestamp":"2026-11-21T10:00:00.123Z","node_id":"x\ud83dy","data":{"p":1.5}}`,
			device: "x\uFFFDy", time: canonicalTime, status: NoStatus, values: p15,
		},
		{
			name:   "node_id raw UTF-8",
			in:     `{"timestamp":"2026-11-21T10:00:00.123Z","node_id":"Füllstand-Ω-😀","data":{"p":1.5}}`,
			device: "Füllstand-Ω-😀", time: canonicalTime, status: NoStatus, values: p15,
		},
		{
			name:   "escaped keys",
			in:     `{"time\u0073tamp":"2026-11-21T10:00:00.123Z","node\u005fid":"n","d\u0061ta":{"\u0070":1.5}}`,
			device: "n", time: canonicalTime, status: NoStatus, values: p15,
		},
		{
			name:   "node_id 256 bytes",
			in:     `{"timestamp":"2026-11-21T10:00:00.123Z","node_id":"` + strings.Repeat("a", 256) + `","status":0}`,
			device: strings.Repeat("a", 256), time: canonicalTime, status: 0,
		},
		{
			name: "whitespace and newlines",
			in: "\r\n\t {\n  \"timestamp\" :\t\"2026-11-21T10:00:00.123Z\" ,\r\n  \"node_id\"\n:\n\"sensor-node-01\",\n" +
				"  \"data\" : {\n    \"p\" : 4.21 ,\n    \"t\":61.3,\n\t\"v\"\t:\t2.7\n  }\n, \"status\" : 0\n}\n\t ",
			device: "sensor-node-01", time: canonicalTime, status: 0, values: canonicalValues,
		},
		{
			name:   "nesting of 64 in an ignored field",
			in:     `{"deep":` + nested(64, "1") + `,"timestamp":"2026-11-21T10:00:00.123Z","node_id":"n","status":0}`,
			device: "n", time: canonicalTime, status: 0,
		},
		{
			name:   "number forms",
			in:     `{"timestamp":"2026-11-21T10:00:00.123Z","node_id":"n","data":{"p":-0.5e-3,"t":1E+2,"v":0,"a":-0,"b":123456789012345678901234567890,"c":1e-400}}`,
			device: "n", time: canonicalTime, status: NoStatus,
			values: []Value{
				{Name: "pressure", Kind: Pressure, V: -0.5e-3},
				{Name: "temperature", Kind: Temperature, V: 100},
				{Name: "vibration", Kind: Vibration, V: 0},
				{Name: "a", Kind: Generic, V: 0},
				{Name: "b", Kind: Generic, V: 123456789012345678901234567890},
				{Name: "c", Kind: Generic, V: 0},
			},
		},
		{
			name:    "missing timestamp uses arrival",
			in:      `{"node_id":"n","data":{"p":1.5}}`,
			arrival: 1763719200_000000042,
			device:  "n", time: 1763719200_000000042, status: NoStatus, values: p15,
		},
		{
			name:    "timestamp wins over arrival",
			in:      canonical,
			arrival: 1763719200_000000042,
			device:  "sensor-node-01", time: canonicalTime, status: 0, values: canonicalValues,
		},

		// Timestamps.
		{name: "rfc3339 fraction Z", in: withTimestamp(`"2026-11-21T10:00:00.123Z"`), time: utcNanos(2026, 11, 21, 10, 0, 0, 123e6)},
		{name: "rfc3339 no fraction Z", in: withTimestamp(`"2026-11-21T10:00:00Z"`), time: utcNanos(2026, 11, 21, 10, 0, 0, 0)},
		{name: "rfc3339 nanoseconds", in: withTimestamp(`"2026-11-21T10:00:00.123456789Z"`), time: utcNanos(2026, 11, 21, 10, 0, 0, 123456789)},
		{name: "rfc3339 more than 9 digits truncated", in: withTimestamp(`"2026-11-21T10:00:00.1234567899Z"`), time: utcNanos(2026, 11, 21, 10, 0, 0, 123456789)},
		{name: "rfc3339 comma fraction", in: withTimestamp(`"2026-11-21T10:00:00,25Z"`), time: utcNanos(2026, 11, 21, 10, 0, 0, 25e7)},
		{name: "offset +01:00", in: withTimestamp(`"2026-11-21T10:00:00+01:00"`), time: zoneNanos(2026, 11, 21, 10, 0, 0, 0, 3600)},
		{name: "offset +01:00 with fraction", in: withTimestamp(`"2026-11-21T10:00:00.123+01:00"`), time: zoneNanos(2026, 11, 21, 10, 0, 0, 123e6, 3600)},
		{name: "offset -0530", in: withTimestamp(`"2026-11-21T10:00:00-0530"`), time: zoneNanos(2026, 11, 21, 10, 0, 0, 0, -(5*3600 + 30*60))},
		{name: "offset -05:30 with fraction", in: withTimestamp(`"2026-11-21T10:00:00.5-05:30"`), time: zoneNanos(2026, 11, 21, 10, 0, 0, 5e8, -(5*3600 + 30*60))},
		{name: "offset +0100", in: withTimestamp(`"2026-11-21T10:00:00+0100"`), time: zoneNanos(2026, 11, 21, 10, 0, 0, 0, 3600)},
		{name: "offset +00:00", in: withTimestamp(`"2026-11-21T10:00:00+00:00"`), time: utcNanos(2026, 11, 21, 10, 0, 0, 0)},
		{name: "offset crosses date", in: withTimestamp(`"2026-01-01T00:30:00+01:00"`), time: utcNanos(2025, 12, 31, 23, 30, 0, 0)},
		{name: "no zone is UTC", in: withTimestamp(`"2026-11-21T10:00:00"`), time: utcNanos(2026, 11, 21, 10, 0, 0, 0)},
		{name: "no zone with fraction", in: withTimestamp(`"2026-11-21T10:00:00.75"`), time: utcNanos(2026, 11, 21, 10, 0, 0, 75e7)},
		{name: "space separator", in: withTimestamp(`"2014-04-01 00:05:00"`), time: utcNanos(2014, 4, 1, 0, 5, 0, 0)},
		{name: "space separator with zone", in: withTimestamp(`"2014-04-01 00:05:00.5Z"`), time: utcNanos(2014, 4, 1, 0, 5, 0, 5e8)},
		{name: "lowercase t and z", in: withTimestamp(`"2026-11-21t10:00:00.123z"`), time: utcNanos(2026, 11, 21, 10, 0, 0, 123e6)},
		{name: "leap day", in: withTimestamp(`"2024-02-29T12:00:00Z"`), time: utcNanos(2024, 2, 29, 12, 0, 0, 0)},
		{name: "leap day 2000", in: withTimestamp(`"2000-02-29T00:00:00Z"`), time: utcNanos(2000, 2, 29, 0, 0, 0, 0)},
		{name: "leap second rolls over", in: withTimestamp(`"2016-12-31T23:59:60Z"`), time: utcNanos(2017, 1, 1, 0, 0, 0, 0)},
		{name: "first accepted year", in: withTimestamp(`"1970-01-02T00:00:00Z"`), time: utcNanos(1970, 1, 2, 0, 0, 0, 0)},
		{name: "the epoch is 1ns", in: withTimestamp(`"1970-01-01T00:00:00Z"`), time: 1},
		{name: "last accepted year", in: withTimestamp(`"2261-12-31T23:59:59.999999999Z"`), time: utcNanos(2261, 12, 31, 23, 59, 59, 999999999)},
		{name: "epoch seconds", in: withTimestamp(`1763719200`), time: utcNanos(2025, 11, 21, 10, 0, 0, 0)},
		{name: "epoch seconds string", in: withTimestamp(`"1763719200"`), time: utcNanos(2025, 11, 21, 10, 0, 0, 0)},
		{name: "epoch seconds exponent", in: withTimestamp(`1.7637192e9`), time: utcNanos(2025, 11, 21, 10, 0, 0, 0)},
		{name: "epoch fractional seconds", in: withTimestamp(`1763719200.5`), time: utcNanos(2025, 11, 21, 10, 0, 0, 5e8)},
		{name: "epoch fractional seconds string", in: withTimestamp(`"1763719200.5"`), time: utcNanos(2025, 11, 21, 10, 0, 0, 5e8)},
		{name: "epoch milliseconds", in: withTimestamp(`1763719200123`), time: utcNanos(2025, 11, 21, 10, 0, 0, 123e6)},
		{name: "epoch milliseconds string", in: withTimestamp(`"1763719200123"`), time: utcNanos(2025, 11, 21, 10, 0, 0, 123e6)},
		{name: "epoch milliseconds round", in: withTimestamp(`1763719200000`), time: utcNanos(2025, 11, 21, 10, 0, 0, 0)},
		{name: "epoch microseconds", in: withTimestamp(`1763719200123456`), time: utcNanos(2025, 11, 21, 10, 0, 0, 123456e3)},
		{name: "epoch nanoseconds", in: withTimestamp(`1763719200000000000`), time: utcNanos(2025, 11, 21, 10, 0, 0, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.device == "" { // timestamp cases use withTimestamp
				tc.device, tc.status = "n1", NoStatus
				tc.values = p15
			}
			d := NewDecoder(tc.cfg)
			r := Reading{Seq: 7, Shard: 3}
			if err := d.Decode([]byte(tc.in), testTopic, tc.arrival, &r); err != nil {
				t.Fatalf("Decode(%s): %v", tc.in, err)
			}
			if r.Device != tc.device {
				t.Errorf("Device = %q; want %q", r.Device, tc.device)
			}
			if r.Time != tc.time {
				t.Errorf("Time = %d (%v); want %d (%v)", r.Time, time.Unix(0, r.Time).UTC(), tc.time, time.Unix(0, tc.time).UTC())
			}
			if r.Status != tc.status {
				t.Errorf("Status = %d; want %d", r.Status, tc.status)
			}
			if !slices.Equal(r.Values, tc.values) {
				t.Errorf("Values = %v; want %v", r.Values, tc.values)
			}
			if r.Topic != testTopic || r.Arrival != tc.arrival || r.Size != int32(len(tc.in)) {
				t.Errorf("Topic, Arrival, Size = %q, %d, %d; want %q, %d, %d", r.Topic, r.Arrival, r.Size, testTopic, tc.arrival, len(tc.in))
			}
			if r.Seq != 0 || r.Shard != 0 {
				t.Errorf("Seq, Shard = %d, %d; want 0, 0 (Decode resets the reading)", r.Seq, r.Shard)
			}
		})
	}
}

// TestDecodeEpochIntegerPrecise checks that integer epoch timestamps in
// milliseconds, microseconds and nanoseconds decode to the exact instant. An
// integer count of milliseconds has no fraction to lose, so "within float
// precision" does not excuse an error.
func TestDecodeEpochIntegerPrecise(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	d := NewDecoder(DecoderConfig{})
	var r Reading
	for _, unit := range []struct {
		name string
		ns   int64 // nanoseconds per unit
	}{{"ms", 1e6}, {"us", 1e3}, {"ns", 1}} {
		bad, first := 0, ""
		const n = 1000
		for range n {
			v := 1_600_000_000*(1e9/unit.ns) + rng.Int64N(200_000_000*(1e9/unit.ns))
			for _, ts := range []string{strconv.FormatInt(v, 10), `"` + strconv.FormatInt(v, 10) + `"`} {
				if err := d.Decode([]byte(withTimestamp(ts)), "", 0, &r); err != nil {
					t.Fatalf("Decode(timestamp %s): %v", ts, err)
				}
				if want := v * unit.ns; r.Time != want {
					if bad++; first == "" {
						first = fmt.Sprintf("timestamp %s: Time = %d; want %d (off by %d ns)", ts, r.Time, want, r.Time-want)
					}
				}
			}
		}
		if bad > 0 {
			t.Errorf("epoch %s: %d of %d integer timestamps decode inexactly; first: %s", unit.name, bad, 2*n, first)
		}
	}
}

// TestDecodeEpochFraction checks fractional epoch seconds, which epochToNanos
// documents as kept "within float precision": a float64 of today's Unix
// nanoseconds has a 256 ns step.
func TestDecodeEpochFraction(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	var r Reading
	for _, tc := range []struct {
		ts   string
		want int64
	}{
		{`1763719200.123`, utcNanos(2025, 11, 21, 10, 0, 0, 123e6)},
		{`"1763719200.123"`, utcNanos(2025, 11, 21, 10, 0, 0, 123e6)},
		{`1763719200.25`, utcNanos(2025, 11, 21, 10, 0, 0, 25e7)},
		{`"1763719200.25"`, utcNanos(2025, 11, 21, 10, 0, 0, 25e7)},
		{`1763719200.000001`, utcNanos(2025, 11, 21, 10, 0, 0, 1e3)},
	} {
		ts, want := tc.ts, tc.want
		if err := d.Decode([]byte(withTimestamp(ts)), "", 0, &r); err != nil {
			t.Fatalf("Decode(timestamp %s): %v", ts, err)
		}
		if diff := r.Time - want; diff < -256 || diff > 256 {
			t.Errorf("timestamp %s: Time = %d; want %d ± 256 ns", ts, r.Time, want)
		}
	}
}

func TestDecodeBad(t *testing.T) {
	long := strings.Repeat("a", 257)
	var manySignals strings.Builder
	for i := range 33 {
		fmt.Fprintf(&manySignals, `,"g%d":%d`, i, i)
	}
	tests := []struct {
		name    string
		cfg     DecoderConfig
		in      string
		arrival int64
		want    Reason
	}{
		{name: "too large", in: canonical + strings.Repeat(" ", 64<<10-len(canonical)+1), want: ReasonTooLarge},
		{name: "too large small limit", cfg: DecoderConfig{MaxPayload: 50}, in: canonical, want: ReasonTooLarge},
		{name: "empty", in: ``, want: ReasonMalformed},
		{name: "whitespace only", in: " \n\t", want: ReasonMalformed},
		{name: "not JSON", in: `hello world`, want: ReasonMalformed},
		{name: "truncated", in: canonical[:len(canonical)/2], want: ReasonMalformed},
		{name: "truncated before brace", in: canonical[:len(canonical)-1], want: ReasonMalformed},
		{name: "truncated in escape", in: `{"node_id":"a\`, want: ReasonMalformed},
		{name: "truncated in unicode escape", in: `{"node_id":"a\u00`, want: ReasonMalformed},
		{name: "array at top level", in: `[` + canonical + `]`, want: ReasonMalformed},
		{name: "string at top level", in: `"sensor"`, want: ReasonMalformed},
		{name: "trailing garbage", in: canonical + ` x`, want: ReasonMalformed},
		{name: "two objects", in: canonical + canonical, want: ReasonMalformed},
		{name: "trailing comma", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","status":0,}`, want: ReasonMalformed},
		{name: "missing colon", in: `{"timestamp" "2026-11-21T10:00:00Z","node_id":"n","status":0}`, want: ReasonMalformed},
		{name: "missing comma", in: `{"timestamp":"2026-11-21T10:00:00Z" "node_id":"n","status":0}`, want: ReasonMalformed},
		{name: "unquoted key", in: `{timestamp:"2026-11-21T10:00:00Z","node_id":"n","status":0}`, want: ReasonMalformed},
		{name: "single quotes", in: `{'node_id':'n'}`, want: ReasonMalformed},
		{name: "data not an object", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":[1,2]}`, want: ReasonMalformed},
		{name: "bad literal", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","x":tru,"status":0}`, want: ReasonMalformed},
		{name: "leading zero", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"p":01}}`, want: ReasonMalformed},
		{name: "leading plus", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"p":+1}}`, want: ReasonMalformed},
		{name: "bare dot", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"p":.5}}`, want: ReasonMalformed},
		{name: "dot without digits", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"p":1.}}`, want: ReasonMalformed},
		{name: "exponent without digits", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"p":1e}}`, want: ReasonMalformed},
		{name: "lone minus", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"p":-}}`, want: ReasonMalformed},
		{name: "hex number", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"p":0x10}}`, want: ReasonMalformed},

		{name: "missing node_id", in: `{"timestamp":"2026-11-21T10:00:00Z","data":{"p":1}}`, want: ReasonMissingNodeID},
		{name: "node_id null", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":null,"data":{"p":1}}`, want: ReasonInvalidNodeID},
		{name: "node_id empty", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"","data":{"p":1}}`, want: ReasonInvalidNodeID},
		{name: "node_id number", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":42,"data":{"p":1}}`, want: ReasonInvalidNodeID},
		{name: "node_id object", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":{"id":"a"},"data":{"p":1}}`, want: ReasonInvalidNodeID},
		{name: "node_id 257 bytes", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"` + long + `","data":{"p":1}}`, want: ReasonInvalidNodeID},
		{name: "node_id 256 bytes after unescaping plus one", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"` + strings.Repeat("a", 255) + `\u00e9","data":{"p":1}}`, want: ReasonInvalidNodeID},
		{name: "node_id escaped control char", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"a\u0001b","data":{"p":1}}`, want: ReasonInvalidNodeID},
		{name: "node_id newline", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"a\nb","data":{"p":1}}`, want: ReasonInvalidNodeID},
		{name: "node_id DEL", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"a\u007fb","data":{"p":1}}`, want: ReasonInvalidNodeID},
		{name: "node_id C1 control char", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"a\u0085b","data":{"p":1}}`, want: ReasonInvalidNodeID},
		{name: "node_id invalid UTF-8", in: "{\"timestamp\":\"2026-11-21T10:00:00Z\",\"node_id\":\"a\xffb\",\"data\":{\"p\":1}}", want: ReasonInvalidNodeID},

		{name: "missing timestamp", in: `{"node_id":"n","data":{"p":1}}`, want: ReasonMissingTimestamp},
		{name: "timestamp null", in: `{"timestamp":null,"node_id":"n","data":{"p":1}}`, want: ReasonInvalidTimestamp},
		{name: "timestamp bool", in: `{"timestamp":true,"node_id":"n","data":{"p":1}}`, want: ReasonInvalidTimestamp},
		{name: "timestamp unparseable", in: withTimestamp(`"yesterday at noon"`), want: ReasonInvalidTimestamp},
		{name: "timestamp empty", in: withTimestamp(`""`), want: ReasonInvalidTimestamp},
		{name: "timestamp year 1900", in: withTimestamp(`"1900-01-01T00:00:00Z"`), want: ReasonInvalidTimestamp},
		{name: "timestamp year 1969", in: withTimestamp(`"1969-12-31T23:59:59Z"`), want: ReasonInvalidTimestamp},
		{name: "timestamp before the epoch via offset", in: withTimestamp(`"1970-01-01T00:30:00+01:00"`), want: ReasonInvalidTimestamp},
		{name: "timestamp year 2262", in: withTimestamp(`"2262-01-01T00:00:00Z"`), want: ReasonInvalidTimestamp},
		{name: "timestamp Feb 30", in: withTimestamp(`"2026-02-30T00:00:00Z"`), want: ReasonInvalidTimestamp},
		{name: "timestamp Feb 29 non-leap", in: withTimestamp(`"2100-02-29T00:00:00Z"`), want: ReasonInvalidTimestamp},
		{name: "timestamp Apr 31", in: withTimestamp(`"2026-04-31T00:00:00Z"`), want: ReasonInvalidTimestamp},
		{name: "timestamp month 13", in: withTimestamp(`"2026-13-01T00:00:00Z"`), want: ReasonInvalidTimestamp},
		{name: "timestamp hour 24", in: withTimestamp(`"2026-11-21T24:00:00Z"`), want: ReasonInvalidTimestamp},
		{name: "timestamp minute 60", in: withTimestamp(`"2026-11-21T10:60:00Z"`), want: ReasonInvalidTimestamp},
		{name: "timestamp offset hour 24", in: withTimestamp(`"2026-11-21T10:00:00+24:00"`), want: ReasonInvalidTimestamp},
		{name: "timestamp bad zone", in: withTimestamp(`"2026-11-21T10:00:00 UTC"`), want: ReasonInvalidTimestamp},
		{name: "timestamp empty fraction", in: withTimestamp(`"2026-11-21T10:00:00.Z"`), want: ReasonInvalidTimestamp},
		{name: "timestamp date only", in: withTimestamp(`"2026-11-21"`), want: ReasonInvalidTimestamp},
		{name: "timestamp epoch zero", in: withTimestamp(`0`), want: ReasonInvalidTimestamp},
		{name: "timestamp epoch negative", in: withTimestamp(`-1763719200`), want: ReasonInvalidTimestamp},
		{name: "timestamp epoch too far", in: withTimestamp(`99999999999`), want: ReasonInvalidTimestamp},
		{name: "timestamp epoch 1e400", in: withTimestamp(`1e400`), want: ReasonInvalidTimestamp},
		{name: "timestamp string NaN", in: withTimestamp(`"NaN"`), want: ReasonInvalidTimestamp},
		{name: "timestamp -Infinity", in: withTimestamp(`-Infinity`), want: ReasonInvalidTimestamp},

		{name: "NaN", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"p":NaN}}`, want: ReasonInvalidValue},
		{name: "Infinity", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"t":Infinity}}`, want: ReasonInvalidValue},
		{name: "-Infinity", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"v":-Infinity}}`, want: ReasonInvalidValue},
		{name: "NaN in generic field", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"p":1,"rpm":NaN}}`, want: ReasonInvalidValue},
		{name: "1e400", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"p":1e400}}`, want: ReasonInvalidValue},
		{name: "-1e400", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"p":-1e400}}`, want: ReasonInvalidValue},
		{name: "mapped signal as string", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"p":"4.2"}}`, want: ReasonInvalidValue},
		{name: "mapped signal as bool", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"t":true}}`, want: ReasonInvalidValue},
		{name: "mapped signal as object", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"v":{"x":1}}}`, want: ReasonInvalidValue},

		{name: "status 3", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","status":3}`, want: ReasonInvalidStatus},
		{name: "status -1", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","status":-1}`, want: ReasonInvalidStatus},
		{name: "status 1.5", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","status":1.5}`, want: ReasonInvalidStatus},
		{name: "status string", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","status":"1"}`, want: ReasonInvalidStatus},
		{name: "status bool", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","status":true}`, want: ReasonInvalidStatus},
		{name: "status 256", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","status":256}`, want: ReasonInvalidStatus},

		{name: "no data no status", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n"}`, want: ReasonNoData},
		{name: "empty data no status", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{}}`, want: ReasonNoData},
		{name: "only null data", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"p":null},"status":null}`, want: ReasonNoData},
		{name: "only ignored data", cfg: DecoderConfig{IgnoreUnmapped: true}, in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"rpm":1,"unit":"bar"}}`, want: ReasonNoData},

		{name: "too many signals", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"p":1` + manySignals.String() + `}}`, want: ReasonTooManySignals},
		{name: "too many signals small limit", cfg: DecoderConfig{MaxSignals: 2}, in: canonical, want: ReasonTooManySignals},

		{name: "nesting too deep", in: `{"deep":` + nested(100, "") + `,"timestamp":"2026-11-21T10:00:00Z","node_id":"n","status":0}`, want: ReasonMalformed},
		{name: "nesting 65 with a value", in: `{"deep":` + nested(65, "1") + `,"timestamp":"2026-11-21T10:00:00Z","node_id":"n","status":0}`, want: ReasonMalformed},
		{name: "nesting too deep in data", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"x":` + nested(10000, "") + `}}`, want: ReasonMalformed},
		{name: "invalid escape", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"a\xb","data":{"p":1}}`, want: ReasonMalformed},
		{name: "invalid unicode escape", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"a\u00g1","data":{"p":1}}`, want: ReasonMalformed},
		{name: "invalid escape in ignored field", in: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","x":"\q","data":{"p":1}}`, want: ReasonMalformed},
		{name: "raw control char in node_id", in: "{\"timestamp\":\"2026-11-21T10:00:00Z\",\"node_id\":\"a\tb\",\"data\":{\"p\":1}}", want: ReasonMalformed},
		{name: "raw newline in ignored string", in: "{\"timestamp\":\"2026-11-21T10:00:00Z\",\"node_id\":\"n\",\"x\":\"a\nb\",\"data\":{\"p\":1}}", want: ReasonMalformed},
		{name: "raw control char after escape", in: "{\"timestamp\":\"2026-11-21T10:00:00Z\",\"node_id\":\"a\\n\x01\",\"data\":{\"p\":1}}", want: ReasonMalformed},
		{name: "raw control char in key", in: "{\"timestamp\":\"2026-11-21T10:00:00Z\",\"node_id\":\"n\",\"data\":{\"p\x00\":1}}", want: ReasonMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(tc.cfg)
			var r Reading
			err := d.Decode([]byte(tc.in), testTopic, tc.arrival, &r)
			checkReason(t, tc.in, err, tc.want)
		})
	}
}

func checkReason(t *testing.T, in string, err error, want Reason) {
	t.Helper()
	if len(in) > 200 {
		in = in[:200] + "…"
	}
	if err == nil {
		t.Fatalf("Decode(%s) succeeded; want %s", in, want)
	}
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("Decode(%s) error %v is %T; want *DecodeError", in, err, err)
	}
	if de.Reason != want {
		t.Errorf("Decode(%s) reason = %s (%v); want %s", in, de.Reason, err, want)
	}
	if msg := err.Error(); msg == "" || !strings.Contains(msg, de.Reason.String()) {
		t.Errorf("error message %q does not mention reason %s", msg, de.Reason)
	}
	if de.Err == nil || errors.Unwrap(err) != de.Err {
		t.Errorf("Unwrap(%v) = %v; want the detail error %v", err, errors.Unwrap(err), de.Err)
	}
}

// TestDecodeUnmappedStringAccepted checks that an unmapped non-numeric field
// under data is ignored, not rejected.
func TestDecodeUnmappedStringAccepted(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	var r Reading
	in := `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"unit":"bar","p":4.2,"note":"4.2"}}`
	if err := d.Decode([]byte(in), "", 0, &r); err != nil {
		t.Fatalf("Decode(%s): %v", in, err)
	}
	want := []Value{{Name: "pressure", Kind: Pressure, V: 4.2}}
	if !slices.Equal(r.Values, want) {
		t.Errorf("Values = %v; want %v", r.Values, want)
	}
}

// TestDecodeGenericDoesNotShadowMapped checks that a generic field whose key
// happens to equal a mapped signal's name ("pressure" next to "p") does not
// overwrite the mapped signal, or take over its value under the wrong kind.
func TestDecodeGenericDoesNotShadowMapped(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	var r Reading
	for _, in := range []string{
		`{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"p":4.2,"pressure":7}}`,
		`{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"pressure":7,"p":4.2}}`,
	} {
		if err := d.Decode([]byte(in), "", 0, &r); err != nil {
			t.Errorf("Decode(%s): %v", in, err)
			continue
		}
		i := slices.IndexFunc(r.Values, func(v Value) bool { return v.Kind == Pressure })
		if i < 0 || r.Values[i].V != 4.2 {
			t.Errorf("Decode(%s): Values = %v; want a pressure signal of kind %s with value 4.2 (from \"p\")", in, r.Values, Pressure)
		}
	}
}

// TestDecodeGenericNameValid checks that an unmapped field under data whose
// name could not be a signal name (empty, invalid UTF-8, control characters) is
// either dropped or rejected, never turned into a generic signal: node_id gets
// the same checks.
func TestDecodeGenericNameValid(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	var r Reading
	for _, in := range []string{
		`{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"":1,"p":2}}`,
		"{\"timestamp\":\"2026-11-21T10:00:00Z\",\"node_id\":\"n\",\"data\":{\"a\xffb\":1,\"p\":2}}",
		`{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"a\u0000b":1,"p":2}}`,
	} {
		if err := d.Decode([]byte(in), "", 0, &r); err != nil {
			continue // rejecting is fine
		}
		for _, v := range r.Values {
			if !validID([]byte(v.Name)) {
				t.Errorf("Decode(%q): Values = %v; want the field %q dropped or the message rejected", in, r.Values, v.Name)
			}
		}
	}
}

// TestDecodeResetsState decodes good messages after bad ones that fail part-way
// through, with the same Decoder and Reading, and checks nothing leaks.
func TestDecodeResetsState(t *testing.T) {
	bad := []string{
		`{"timestamp":"2026-11-21T10:00:00Z","node_id":"stale","data":{"p":9,"t":9,"v":9,"rpm":9},"status":7}`,
		`{"timestamp":"2026-11-21T10:00:00Z","node_id":"stale","data":{"p":9,"t":NaN}}`,
		`{"timestamp":"2026-11-21T10:00:00Z","node_id":"st\u00e9le","data":{"p":9,"rpm":9},"status":2,"x":"\q"}`,
		`{"node_id":"stale","status":2,"data":{"p":9}}`,
		`{"timestamp":"2020-01-01T00:00:00Z","status":2,"data":{"p":9}}`,
		`{"timestamp":"2020-01-01T00:00:00Z","node_id":"stale","status":2,"data":{"p":9}} trailing`,
		canonical[:90],
	}
	good := []struct {
		in      string
		device  string
		time    int64
		status  int8
		values  []Value
		arrival int64
	}{
		{in: canonical, device: "sensor-node-01", time: canonicalTime, status: 0, values: canonicalValues},
		{in: `{"timestamp":1763719200,"node_id":"b","data":{"t":1}}`, device: "b", time: 1763719200e9, status: NoStatus, values: []Value{{Name: "temperature", Kind: Temperature, V: 1}}},
		{in: `{"node_id":"c\u00e9","status":1}`, arrival: 42, device: "cé", time: 42, status: 1},
	}
	d := NewDecoder(DecoderConfig{})
	var r Reading
	for _, b := range bad {
		for _, g := range good {
			if err := d.Decode([]byte(b), "bad", 0, &r); err == nil {
				t.Fatalf("Decode(%s) succeeded; want an error", b)
			}
			if err := d.Decode([]byte(g.in), "good", g.arrival, &r); err != nil {
				t.Fatalf("after %s: Decode(%s): %v", b, g.in, err)
			}
			if r.Device != g.device || r.Time != g.time || r.Status != g.status || !slices.Equal(r.Values, g.values) || r.Topic != "good" {
				t.Errorf("after %s: Decode(%s) = {Device %q, Time %d, Status %d, Values %v, Topic %q}; want {%q, %d, %d, %v, %q}",
					b, g.in, r.Device, r.Time, r.Status, r.Values, r.Topic, g.device, g.time, g.status, g.values, "good")
			}
		}
	}
}

func TestDecodeInterns(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	var r1, r2 Reading
	msg := []byte(`{"timestamp":"2026-11-21T10:00:00Z","node_id":"pump-7","data":{"rpm":1}}`)
	if err := d.Decode(msg, "", 0, &r1); err != nil {
		t.Fatal(err)
	}
	if err := d.Decode(bytes.Clone(msg), "", 0, &r2); err != nil {
		t.Fatal(err)
	}
	if unsafe.StringData(r1.Device) != unsafe.StringData(r2.Device) {
		t.Errorf("Device strings of two decodes do not share storage")
	}
	if unsafe.StringData(r1.Values[0].Name) != unsafe.StringData(r2.Values[0].Name) {
		t.Errorf("generic signal names of two decodes do not share storage")
	}
	// The interned string must not alias the payload.
	msg[len(`{"timestamp":"2026-11-21T10:00:00Z","node_id":"`)] = 'X'
	if r1.Device != "pump-7" {
		t.Errorf("Device = %q after the payload changed; want %q", r1.Device, "pump-7")
	}

	// Escaped IDs are interned from the scratch buffer, which must not alias either.
	esc := []byte(`{"timestamp":"2026-11-21T10:00:00Z","node_id":"caf\u00e9","status":0}`)
	var r3, r4 Reading
	if err := d.Decode(esc, "", 0, &r3); err != nil {
		t.Fatal(err)
	}
	if err := d.Decode([]byte(`{"timestamp":"2026-11-21T10:00:00Z","node_id":"t\u00e9a","status":0}`), "", 0, &r4); err != nil {
		t.Fatal(err)
	}
	if r3.Device != "café" || r4.Device != "téa" {
		t.Errorf("Devices = %q, %q; want %q, %q", r3.Device, r4.Device, "café", "téa")
	}
}

func TestDecodeInternBounded(t *testing.T) {
	const limit = 8
	d := NewDecoder(DecoderConfig{MaxInterned: limit})
	var r Reading
	for i := range 1000 {
		msg := fmt.Sprintf(`{"timestamp":"2026-11-21T10:00:00Z","node_id":"node-%d","data":{"g%d":1}}`, i, i)
		if err := d.Decode([]byte(msg), "", 0, &r); err != nil {
			t.Fatal(err)
		}
		if r.Device != fmt.Sprintf("node-%d", i) || r.Values[0].Name != fmt.Sprintf("g%d", i) {
			t.Fatalf("Decode(%s) = Device %q, Values %v", msg, r.Device, r.Values)
		}
		if len(d.intern) > limit {
			t.Fatalf("after %d devices the intern table holds %d strings; want at most %d", i+1, len(d.intern), limit)
		}
	}
}

func TestDecodeZeroAllocs(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  DecoderConfig
		in   string
	}{
		{name: "canonical", in: canonical},
		{name: "generic field", in: `{"timestamp":"2026-11-21T10:00:00.123Z","node_id":"sensor-node-01","data":{"p":4.21,"rpm":1500,"t":61.3},"status":0}`},
		{name: "offset", in: `{"timestamp":"2026-11-21T10:00:00.123+01:00","node_id":"sensor-node-01","data":{"p":4.21,"t":61.3,"v":2.7},"status":0}`},
		{name: "epoch and escapes", in: `{"timestamp":1763719200123,"node_id":"caf\u00e9","meta":{"a":[1,"x\"y"]},"data":{"p":4.21,"unit":"bar"},"status":null}`},
		{
			name: "mapped multi-letter key",
			cfg:  DecoderConfig{Signals: map[string]SignalSpec{"pressure_bar": {Name: "pressure", Kind: Pressure}}},
			in:   `{"timestamp":"2026-11-21T10:00:00.123Z","node_id":"sensor-node-01","data":{"pressure_bar":4.21},"status":0}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDecoder(tc.cfg)
			var r Reading
			payload := []byte(tc.in)
			allocs := testing.AllocsPerRun(1000, func() {
				if err := d.Decode(payload, testTopic, 0, &r); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("Decode allocates %v times per message; want 0", allocs)
			}
		})
	}
}

func TestDecoderConfigValidate(t *testing.T) {
	good := DefaultDecoderConfig()
	if err := good.Validate(); err != nil {
		t.Fatalf("DefaultDecoderConfig().Validate() = %v; want nil", err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*DecoderConfig)
		field string
	}{
		{"max_payload", func(c *DecoderConfig) { c.MaxPayload = 0 }, "max_payload"},
		{"max_signals", func(c *DecoderConfig) { c.MaxSignals = -1 }, "max_signals"},
		{"empty name", func(c *DecoderConfig) { c.Signals = map[string]SignalSpec{"p": {}} }, "signals"},
		{"duplicate name", func(c *DecoderConfig) { c.Signals["q"] = SignalSpec{Name: "pressure", Kind: Pressure} }, "signals"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultDecoderConfig()
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("Validate() = %v; want an error naming %q", err, tc.field)
			}
		})
	}
}

func TestReasonNames(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Reasons() {
		s := r.String()
		if s == "" || s == "unknown" || s == "none" || seen[s] {
			t.Errorf("Reason(%d).String() = %q; want a distinct name", r, s)
		}
		seen[s] = true
	}
	if len(seen) != int(numReasons)-1 {
		t.Errorf("Reasons() has %d names; want %d", len(seen), numReasons-1)
	}
	if got := Reason(200).String(); got != "unknown" {
		t.Errorf("Reason(200).String() = %q; want %q", got, "unknown")
	}
}

func TestPeekTime(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	if got, ok := d.PeekTime([]byte(canonical)); !ok || got != canonicalTime {
		t.Errorf("PeekTime(canonical) = %d, %v; want %d, true", got, ok, canonicalTime)
	}
	if got, ok := d.PeekTime([]byte(`{"node_id":"n","status":0}`)); ok {
		t.Errorf("PeekTime(no timestamp) = %d, true; want false", got)
	}
}

// fuzzSeeds are good and bad messages for FuzzDecode.
var fuzzSeeds = []string{
	canonical,
	`{"status":2,"data":{"v":2.7,"p":4.21,"t":61.3},"node_id":"sensor-node-01","timestamp":"2026-11-21T10:00:00.123Z"}`,
	`{"timestamp":1763719200123,"node_id":"caf\u00e9 \ud83d\ude00","data":{"p":-0.5e-3,"rpm":1E+3,"x":null,"unit":"bar"},"meta":{"a":[1,{"b":[]}]}}`,
	`{"timestamp":"2014-04-01 00:05:00","node_id":"n","data":{"p":1}}`,
	`{"timestamp":"2026-11-21t10:00:00.5-0530","node_id":"n","status":1}`,
	`{"timestamp":"1970-01-02T00:00:00+01:00","node_id":"n","status":1}`,
	`{"timestamp":"1763719200.5","node_id":"n","data":{"t":61}}`,
	`{"node_id":"n","data":{"p":1}}`,
	`{"timestamp":"2026-02-30T00:00:00Z","node_id":"n","data":{"p":1}}`,
	`{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"p":NaN,"t":-Infinity}}`,
	`{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"p":1e400}}`,
	`{"timestamp":"2026-11-21T10:00:00Z","node_id":"a\u0001","status":3}`,
	`{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","x":"\q"}`,
	`{"x":` + nested(70, "1") + `}`,
	`[1,2,3]`,
	``,
	`{`,
	`{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","status":0} x`,
}

// FuzzDecode checks that Decode never panics, that what it accepts is sane, and
// that what it rejects carries a reason.
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), int64(0))
	}
	f.Add([]byte(`{"node_id":"n","status":0}`), int64(1763719200e9))
	logs, _ := filepath.Glob("../fixtures/*.log")
	for _, name := range logs {
		file, err := os.Open(name)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(file)
		sc.Buffer(nil, 1<<20)
		for i := 0; i < 50 && sc.Scan(); i++ {
			f.Add(bytes.Clone(sc.Bytes()), int64(0))
		}
		file.Close()
	}
	f.Fuzz(func(t *testing.T, payload []byte, arrival int64) {
		if arrival < 0 {
			arrival = 0
		}
		d := NewDecoder(DecoderConfig{MaxSignals: 8})
		var r Reading
		err := d.Decode(payload, "t", arrival, &r)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is %T; want *DecodeError", err, err)
			}
			if de.Reason == ReasonNone || de.Reason >= numReasons {
				t.Fatalf("error %v has reason %d", err, de.Reason)
			}
			if msg := err.Error(); !strings.Contains(msg, de.Reason.String()) {
				t.Fatalf("error message %q does not mention the reason", msg)
			}
			return
		}
		if r.Device == "" || !utf8.ValidString(r.Device) {
			t.Fatalf("Device = %q; want non-empty valid UTF-8", r.Device)
		}
		if r.Time <= 0 {
			t.Fatalf("Time = %d; want > 0", r.Time)
		}
		if r.Status < NoStatus || r.Status > 2 {
			t.Fatalf("Status = %d; want -1..2", r.Status)
		}
		if len(r.Values) > 8 {
			t.Fatalf("%d values; want at most MaxSignals = 8", len(r.Values))
		}
		if len(r.Values) == 0 && r.Status == NoStatus {
			t.Fatalf("accepted a message with neither values nor status")
		}
		for _, v := range r.Values {
			if math.IsNaN(v.V) || math.IsInf(v.V, 0) {
				t.Fatalf("value %v is not finite", v)
			}
			if v.Name == "" || !utf8.ValidString(v.Name) {
				t.Fatalf("value %v: want a non-empty valid UTF-8 name", v)
			}
		}
		// Decoding is deterministic and does not depend on the decoder's history.
		var r2 Reading
		if err := NewDecoder(DecoderConfig{MaxSignals: 8}).Decode(payload, "t", arrival, &r2); err != nil ||
			r2.Device != r.Device || r2.Time != r.Time || r2.Status != r.Status || !slices.Equal(r2.Values, r.Values) {
			t.Fatalf("second decode = %+v, %v; want %+v", r2, err, r)
		}
	})
}

// TestDecodeMatchesEncodingJSON decodes random valid messages and checks the
// result against encoding/json on the same payload.
func TestDecodeMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 7))
	d := NewDecoder(DecoderConfig{})
	var r Reading
	for i := range 2000 {
		payload, sigs := randomMessage(rng)
		if err := d.Decode(payload, "", 0, &r); err != nil {
			t.Fatalf("message %d: Decode(%s): %v", i, payload, err)
		}
		var ref struct {
			Timestamp string         `json:"timestamp"`
			NodeID    string         `json:"node_id"`
			Data      map[string]any `json:"data"`
			Status    *int8          `json:"status"`
		}
		// A map keeps encoding/json from matching keys case-insensitively.
		var top map[string]json.RawMessage
		if err := json.Unmarshal(payload, &top); err != nil {
			t.Fatalf("message %d: encoding/json rejects %s: %v", i, payload, err)
		}
		for k, dst := range map[string]any{"timestamp": &ref.Timestamp, "node_id": &ref.NodeID, "data": &ref.Data, "status": &ref.Status} {
			if raw, ok := top[k]; ok {
				if err := json.Unmarshal(raw, dst); err != nil {
					t.Fatalf("message %d: encoding/json field %s: %v", i, k, err)
				}
			}
		}
		ts, err := time.Parse(time.RFC3339Nano, ref.Timestamp)
		if err != nil {
			t.Fatalf("message %d: time.Parse(%q): %v", i, ref.Timestamp, err)
		}
		wantStatus := int8(NoStatus)
		if ref.Status != nil {
			wantStatus = *ref.Status
		}
		if r.Device != ref.NodeID || r.Time != ts.UnixNano() || r.Status != wantStatus {
			t.Fatalf("message %d: %s\ngot Device %q, Time %d, Status %d; want %q, %d, %d", i, payload, r.Device, r.Time, r.Status, ref.NodeID, ts.UnixNano(), wantStatus)
		}
		var want []Value
		for _, key := range sigs {
			f, ok := ref.Data[key].(float64)
			if !ok {
				t.Fatalf("message %d: encoding/json data[%q] = %#v; want a number", i, key, ref.Data[key])
			}
			spec, mapped := DefaultSignals()[key]
			if !mapped {
				spec = SignalSpec{Name: key, Kind: Generic}
			}
			want = append(want, Value{Name: spec.Name, Kind: spec.Kind, V: f})
		}
		if !slices.EqualFunc(r.Values, want, func(a, b Value) bool {
			return a.Name == b.Name && a.Kind == b.Kind && math.Float64bits(a.V) == math.Float64bits(b.V)
		}) {
			t.Fatalf("message %d: %s\ngot Values %v; want %v", i, payload, r.Values, want)
		}
	}
}

// randomMessage returns a valid random message and the keys of its numeric
// data fields in payload order.
func randomMessage(rng *rand.Rand) ([]byte, []string) {
	ws := func() string { return []string{"", "", "", " ", "\n", "\t ", "\r\n  "}[rng.IntN(7)] }
	var fields []string
	add := func(k, v string) { fields = append(fields, ws()+strconv.Quote(k)+ws()+":"+ws()+v+ws()) }

	lo := time.Date(1971, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	hi := time.Date(2261, 6, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	ts := time.Unix(0, lo+rng.Int64N(hi-lo)).In(time.FixedZone("", (rng.IntN(57)-28)*15*60))
	layout := []string{time.RFC3339, time.RFC3339Nano, "2006-01-02T15:04:05.000Z07:00"}[rng.IntN(3)]
	add("timestamp", `"`+ts.Format(layout)+`"`)
	add("node_id", jsonString(randomID(rng)))

	type field struct{ key, value string }
	var data []field
	for _, k := range rng.Perm(3) {
		if rng.IntN(4) > 0 {
			data = append(data, field{[]string{"p", "t", "v"}[k], randomNumber(rng)})
		}
	}
	used := map[string]bool{}
	for range rng.IntN(4) {
		if key := fmt.Sprintf("g_%d", rng.IntN(1000)); !used[key] {
			used[key] = true
			data = append(data, field{key, randomNumber(rng)})
		}
	}
	for range rng.IntN(3) {
		data = append(data, field{fmt.Sprintf("s_%d", rng.IntN(1000)), randomJunk(rng, 2, false)})
	}
	rng.Shuffle(len(data), func(i, j int) { data[i], data[j] = data[j], data[i] })
	var sigs, body []string
	for _, f := range data {
		if !strings.HasPrefix(f.key, "s_") {
			sigs = append(sigs, f.key)
		}
		body = append(body, ws()+strconv.Quote(f.key)+ws()+":"+ws()+f.value+ws())
	}
	if len(sigs) == 0 || rng.IntN(2) == 0 {
		add("status", strconv.Itoa(rng.IntN(3)))
	}
	add("data", "{"+strings.Join(body, ",")+"}")
	for range rng.IntN(4) {
		add(fmt.Sprintf("x_%d", rng.IntN(1000)), randomJunk(rng, 3, true))
	}
	rng.Shuffle(len(fields), func(i, j int) { fields[i], fields[j] = fields[j], fields[i] })
	return []byte(ws() + "{" + strings.Join(fields, ",") + "}" + ws()), sigs
}

func jsonString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func randomID(rng *rand.Rand) string {
	alphabet := []rune(`abcXYZ019-_./:"\é€Ω😀 `)
	var b strings.Builder
	for n := 1 + rng.IntN(40); n > 0; n-- {
		b.WriteRune(alphabet[rng.IntN(len(alphabet))])
	}
	return b.String()
}

func randomNumber(rng *rand.Rand) string {
	var f float64
	switch rng.IntN(6) {
	case 0:
		return strconv.Itoa(rng.IntN(2_000_001) - 1_000_000)
	case 1:
		f = rng.NormFloat64() * 100
	case 2:
		f = math.Ldexp(rng.Float64(), rng.IntN(2000)-1000)
	case 3:
		f = math.Float64frombits(rng.Uint64())
		if math.IsNaN(f) || math.IsInf(f, 0) {
			f = 1
		}
	case 4:
		return []string{"0", "-0", "0.0", "1E3", "1e-7", "-2.5E+2", "5e-324", "1.7976931348623157e308", "0.1", "123456789012345678901234567890"}[rng.IntN(10)]
	default:
		f = rng.Float64()
	}
	switch rng.IntN(3) {
	case 0:
		return strconv.FormatFloat(f, 'g', -1, 64)
	case 1:
		return strconv.FormatFloat(f, 'e', rng.IntN(20), 64)
	default:
		s := strconv.FormatFloat(f, 'g', 1+rng.IntN(20), 64)
		return strings.ToUpper(s)
	}
}

// randomJunk returns a random valid JSON value; numbers only if numbers is set.
func randomJunk(rng *rand.Rand, depth int, numbers bool) string {
	n := 5
	if depth > 0 {
		n = 7
	}
	switch rng.IntN(n) {
	case 0:
		return "true"
	case 1:
		return "false"
	case 2:
		return "null"
	case 3:
		return jsonString(randomID(rng) + "\n\t\x01\\\"}]")
	case 4:
		if numbers {
			return randomNumber(rng)
		}
		return `"42"`
	case 5:
		var items []string
		for range rng.IntN(4) {
			items = append(items, randomJunk(rng, depth-1, true))
		}
		return "[" + strings.Join(items, ",") + "]"
	default:
		var items []string
		for i := range rng.IntN(4) {
			items = append(items, fmt.Sprintf(`"k%d":%s`, i, randomJunk(rng, depth-1, true)))
		}
		return "{" + strings.Join(items, ",") + "}"
	}
}

func TestDecodeLabel(t *testing.T) {
	d := NewDecoder(DecoderConfig{})
	var r Reading
	for _, tc := range []struct {
		label string
		want  int8
	}{
		{`,"label":1`, 1}, {`,"label":0`, 0}, {`,"label":0.0`, 0}, {`,"label":2`, 1},
		{`,"label":true`, 1}, {`,"label":false`, 0}, {`,"label":null`, NoLabel},
		{`,"label":"yes"`, NoLabel}, {``, NoLabel},
	} {
		msg := `{"timestamp":"2026-11-21T10:00:00Z","node_id":"n","data":{"p":1}` + tc.label + `}`
		if err := d.Decode([]byte(msg), "", 0, &r); err != nil {
			t.Fatalf("Decode(%s): %v", msg, err)
		}
		if r.Label != tc.want {
			t.Errorf("Decode(%s): Label = %d; want %d", msg, r.Label, tc.want)
		}
	}
}

// TestPayloadHash checks PayloadHash against published XXH64 test vectors
// (seed 0), and that Decode stores it in the reading.
func TestPayloadHash(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
	}{
		{"", 0xef46db3751d8e999},
		{"a", 0xd24ec4f1a98c6e5b},
		{"abc", 0x44bc2cf5ad770999},
		{"Nobody inspects the spammish repetition", 0xfbcea83c8a378bf1},
	} {
		if got := PayloadHash([]byte(tc.in)); got != tc.want {
			t.Errorf("PayloadHash(%q) = %#x; want %#x", tc.in, got, tc.want)
		}
	}
	d := NewDecoder(DecoderConfig{})
	var r Reading
	if err := d.Decode([]byte(canonical), "", 0, &r); err != nil {
		t.Fatal(err)
	}
	if want := PayloadHash([]byte(canonical)); r.Hash != want {
		t.Errorf("Reading.Hash = %#x; want PayloadHash of the payload, %#x", r.Hash, want)
	}
}
