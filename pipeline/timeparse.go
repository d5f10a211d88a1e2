package pipeline

import "math"

// Representable event times: int64 nanoseconds cover 1678..2262; Vigil accepts
// years 1970..2261 (earlier times are almost certainly a broken device clock).
const (
	minYear = 1970
	maxYear = 2261
	// maxSeconds is 2262-01-01T00:00:00Z in Unix seconds, the first instant
	// not accepted.
	maxSeconds = 9214646400
)

// parseTime parses RFC 3339 timestamps and the common variants devices and
// historians emit, without allocating:
//
//	2026-11-21T10:00:00Z            2026-11-21T10:00:00.123456789+01:00
//	2026-11-21 10:00:00             (no zone: UTC)
//	2026-11-21T10:00:00.5+0100      2026-11-21t10:00:00z
//
// It returns Unix nanoseconds.
func parseTime(s []byte) (int64, bool) {
	// YYYY-MM-DD?HH:MM:SS is 19 bytes.
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	if sep := s[10]; sep != 'T' && sep != 't' && sep != ' ' {
		return 0, false
	}
	year, ok1 := atoi(s[0:4])
	month, ok2 := atoi(s[5:7])
	day, ok3 := atoi(s[8:10])
	hour, ok4 := atoi(s[11:13])
	minute, ok5 := atoi(s[14:16])
	sec, ok6 := atoi(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return 0, false
	}
	if year < minYear || year > maxYear || month < 1 || month > 12 || day < 1 ||
		day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 60 {
		return 0, false
	}
	rest := s[19:]
	var nanos int64
	if len(rest) > 0 && (rest[0] == '.' || rest[0] == ',') {
		i := 1
		scale := int64(100_000_000)
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			nanos += int64(rest[i]-'0') * scale
			scale /= 10
			i++
		}
		if i == 1 {
			return 0, false
		}
		rest = rest[i:]
	}
	var offset int64 // seconds east of UTC
	switch {
	case len(rest) == 0:
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':',
		len(rest) == 5 && (rest[0] == '+' || rest[0] == '-'):
		oh, ok1 := atoi(rest[1:3])
		om, ok2 := atoi(rest[len(rest)-2:])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, false
		}
		offset = int64(oh*3600 + om*60)
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return 0, false
	}
	secs := daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec) - offset
	if secs < 0 || secs >= maxSeconds {
		return 0, false // the offset moved it out of range
	}
	return secs*1e9 + nanos, true
}

func atoi(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the days since 1970-01-01 of a proleptic Gregorian
// date (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// epochToNanos interprets a Unix epoch number by magnitude: seconds below 1e11
// (until year 5138), milliseconds below 1e14, microseconds below 1e17, else
// nanoseconds. Fractions are kept to the nanosecond (within float precision).
func epochToNanos(f float64) (int64, bool) {
	if math.IsNaN(f) || f <= 0 {
		return 0, false
	}
	var ns float64
	switch {
	case f < 1e11:
		ns = f * 1e9
	case f < 1e14:
		ns = f * 1e6
	case f < 1e17:
		ns = f * 1e3
	default:
		ns = f
	}
	if ns >= float64(maxSeconds)*1e9 {
		return 0, false
	}
	return int64(math.Round(ns)), true
}

// epochIntToNanos interprets an integer epoch exactly (no float rounding), by
// magnitude as epochToNanos does. It returns false for anything but digits.
func epochIntToNanos(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if n <= 0 {
		return 0, false
	}
	var unit int64 // nanoseconds per unit
	switch {
	case n < 1e11:
		unit = 1e9
	case n < 1e14:
		unit = 1e6
	case n < 1e17:
		unit = 1e3
	default:
		unit = 1
	}
	if n >= maxSeconds*(1e9/unit) { // checked before multiplying: no overflow
		return 0, false
	}
	return n * unit, true
}
