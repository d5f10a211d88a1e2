package pipeline

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestParseTimeMatchesTimeParse formats random instants in several layouts and
// zones and checks parseTime against time.Parse on the same string.
func TestParseTimeMatchesTimeParse(t *testing.T) {
	layouts := []string{
		time.RFC3339,
		time.RFC3339Nano,
		"2006-01-02T15:04:05.000Z07:00",
		"2006-01-02T15:04:05.000000-07:00",
		"2006-01-02T15:04:05Z0700",
		"2006-01-02T15:04:05.999999999-0700",
		"2006-01-02 15:04:05",
		"2006-01-02 15:04:05.999999999",
		"2006-01-02 15:04:05.000Z07:00",
	}
	rng := rand.New(rand.NewPCG(3, 4))
	// Local dates must stay within 1970..2261 whatever the zone.
	lo := time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC).UnixNano()
	hi := time.Date(2261, 12, 31, 0, 0, 0, 0, time.UTC).UnixNano()
	for range 10_000 {
		layout := layouts[rng.IntN(len(layouts))]
		zone := time.UTC
		if rng.IntN(4) > 0 {
			zone = time.FixedZone("", (rng.IntN(24*4+1)-12*4)*15*60) // -12:00..+12:00
		}
		tm := time.Unix(0, lo+rng.Int64N(hi-lo)).In(zone)
		s := tm.Format(layout)
		if rng.IntN(8) == 0 {
			s = strings.ToLower(s) // lowercase t and z
		}
		want, err := time.Parse(layout, strings.ToUpper(s))
		if err != nil {
			t.Fatalf("time.Parse(%q, %q): %v", layout, s, err)
		}
		got, ok := parseTime([]byte(s))
		if !ok || got != want.UnixNano() {
			t.Fatalf("parseTime(%q) = %d, %v; want %d, true (%v)", s, got, ok, want.UnixNano(), want.UTC())
		}
	}
}

func TestParseTimeRejects(t *testing.T) {
	for _, s := range []string{
		"",
		"2026-11-21",
		"2026-11-21T10:00",
		"2026-11-21T10:00:0",
		" 2026-11-21T10:00:00Z",
		"2026-11-21T10:00:00Z ",
		"2026/11/21T10:00:00Z",
		"2026-11-21X10:00:00Z",
		"2026-11-21_10:00:00Z",
		"2026-11-21T10.00.00Z",
		"+026-11-21T10:00:00Z",
		"2026-1a-21T10:00:00Z",
		"2026-11-21T1 :00:00Z",
		"1969-12-31T23:59:59Z",
		"1900-01-01T00:00:00Z",
		"2262-01-01T00:00:00Z",
		"9999-12-31T23:59:59Z",
		"2026-00-21T10:00:00Z",
		"2026-13-21T10:00:00Z",
		"2026-11-00T10:00:00Z",
		"2026-11-31T10:00:00Z",
		"2026-02-29T10:00:00Z",
		"2026-11-21T24:00:00Z",
		"2026-11-21T10:60:00Z",
		"2026-11-21T10:00:61Z",
		"2026-11-21T10:00:00.Z",
		"2026-11-21T10:00:00.",
		"2026-11-21T10:00:00.123.4Z",
		"2026-11-21T10:00:00ZZ",
		"2026-11-21T10:00:00UTC",
		"2026-11-21T10:00:00+01",
		"2026-11-21T10:00:00+1:00",
		"2026-11-21T10:00:00+01:0",
		"2026-11-21T10:00:00+01-00",
		"2026-11-21T10:00:00+24:00",
		"2026-11-21T10:00:00+01:60",
		"2026-11-21T10:00:00 +01:00",
		"2026-11-21T10:00:00*01:00",
		"2026-11-21T10:00:00+0a:00",
	} {
		if got, ok := parseTime([]byte(s)); ok {
			t.Errorf("parseTime(%q) = %d, true; want false", s, got)
		}
	}
}

// TestParseTimeNotBeforeEpoch checks that a zone offset cannot carry a 1970
// date to before the Unix epoch: Vigil rejects earlier times, and the epoch
// path rejects values <= 0.
func TestParseTimeNotBeforeEpoch(t *testing.T) {
	for _, s := range []string{
		"1970-01-01T00:00:00+00:01",
		"1970-01-01T00:30:00+01:00",
		"1970-01-01T11:59:59.999+1200",
	} {
		if got, ok := parseTime([]byte(s)); ok && got < 0 {
			t.Errorf("parseTime(%q) = %d, true; want false (before the Unix epoch)", s, got)
		}
	}
}

func TestParseTimeLeapYears(t *testing.T) {
	for y := minYear; y <= maxYear; y++ {
		leap := time.Date(y, 2, 29, 0, 0, 0, 0, time.UTC).Month() == time.February
		if wantLeap := y%4 == 0 && (y%100 != 0 || y%400 == 0); leap != wantLeap {
			t.Fatalf("BUG in test: leap(%d) = %v", y, leap)
		}
		feb29 := []byte(time.Date(y, 2, 1, 0, 0, 0, 0, time.UTC).Format("2006-01") + "-29T12:00:00Z")
		got, ok := parseTime(feb29)
		if ok != leap {
			t.Errorf("parseTime(%q) ok = %v; want %v", feb29, ok, leap)
		}
		if ok && got != time.Date(y, 2, 29, 12, 0, 0, 0, time.UTC).UnixNano() {
			t.Errorf("parseTime(%q) = %d; want %d", feb29, got, time.Date(y, 2, 29, 12, 0, 0, 0, time.UTC).UnixNano())
		}
		for m := time.January; m <= time.December; m++ {
			last := time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
			if got := daysIn(int(m), y); got != last {
				t.Errorf("daysIn(%d, %d) = %d; want %d", m, y, got, last)
			}
			for _, d := range []int{1, last} {
				want := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
				if got := daysFromCivil(y, int(m), d); got != want {
					t.Errorf("daysFromCivil(%d, %d, %d) = %d; want %d", y, m, d, got, want)
				}
			}
		}
	}
	for _, s := range []string{"2000-02-29T00:00:00Z", "2024-02-29T00:00:00Z", "2260-02-29T00:00:00Z"} {
		if _, ok := parseTime([]byte(s)); !ok {
			t.Errorf("parseTime(%q) failed; want a leap day", s)
		}
	}
	for _, s := range []string{"2100-02-29T00:00:00Z", "2200-02-29T00:00:00Z", "2026-02-29T00:00:00Z"} {
		if _, ok := parseTime([]byte(s)); ok {
			t.Errorf("parseTime(%q) succeeded; want false (not a leap year)", s)
		}
	}
}

func TestEpochToNanos(t *testing.T) {
	sec := time.Date(2025, 11, 21, 10, 0, 0, 0, time.UTC).Unix() // 1763719200
	for _, tc := range []struct {
		name string
		in   float64
		want int64
		ok   bool
	}{
		{"one second", 1, 1e9, true},
		{"half a second", 0.5, 5e8, true},
		{"seconds", float64(sec), sec * 1e9, true},
		{"fractional seconds", float64(sec) + 0.5, sec*1e9 + 5e8, true},
		{"largest seconds", 1e11 - 1, 0, false}, // year 5138: out of range
		{"smallest milliseconds", 1e11, 1e17, true},
		{"milliseconds", float64(sec * 1e3), sec * 1e9, true},
		{"largest milliseconds", 1e14 - 1, 0, false}, // year 5138
		{"smallest microseconds", 1e14, 1e17, true},
		{"microseconds", float64(sec * 1e6), sec * 1e9, true},
		{"smallest nanoseconds", 1e17, 1e17, true},
		{"nanoseconds", float64(sec * 1e9), sec * 1e9, true},
		{"year 2200 nanoseconds", float64(time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()), time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(), true},
		{"beyond int64", 1e19, 0, false},
		{"zero", 0, 0, false},
		{"negative", -1, 0, false},
		{"negative zero", math.Copysign(0, -1), 0, false},
		{"NaN", math.NaN(), 0, false},
		{"+Inf", math.Inf(1), 0, false},
		{"-Inf", math.Inf(-1), 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := epochToNanos(tc.in)
			if ok != tc.ok || (ok && got != tc.want) {
				t.Errorf("epochToNanos(%v) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestEpochRangeMatchesParseTime checks that the epoch path accepts the same
// years as parseTime ("Vigil accepts years 1970..2261").
func TestEpochRangeMatchesParseTime(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2261, 6, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2261, 11, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2261, 12, 31, 0, 0, 0, 0, time.UTC),
	} {
		s := tm.Format(time.RFC3339)
		want, ok := parseTime([]byte(s))
		if !ok || want != tm.UnixNano() {
			t.Fatalf("parseTime(%q) = %d, %v; want %d, true", s, want, ok, tm.UnixNano())
		}
		for _, f := range []float64{float64(tm.Unix()), float64(tm.UnixMilli()), float64(tm.UnixNano())} {
			if got, ok := epochToNanos(f); !ok || got != want {
				t.Errorf("epochToNanos(%.0f) (%s) = %d, %v; want %d, true", f, s, got, ok, want)
			}
		}
	}
}
