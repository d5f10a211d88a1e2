package sim

import (
	"math"
	"strconv"
	"time"
)

const msPerDay = 24 * 60 * 60 * 1000

// appendCenti appends x rounded to two decimals, in the shortest form: the
// same text as strconv.AppendFloat(b, math.Round(x*100)/100, 'f', -1, 64),
// except that it never writes "-0". x must be finite and below 9e16.
func appendCenti(b []byte, x float64) []byte {
	n := int64(math.Round(x * 100))
	if n < 0 {
		b = append(b, '-')
		n = -n
	}
	b = strconv.AppendInt(b, n/100, 10)
	if f := n % 100; f != 0 {
		b = append(b, '.', byte('0'+f/10))
		if f%10 != 0 {
			b = append(b, byte('0'+f%10))
		}
	}
	return b
}

// appendTime appends Unix milliseconds ms as RFC 3339 UTC with milliseconds,
// "2006-01-02T15:04:05.000Z". The date is formatted once a day.
func (g *Generator) appendTime(b []byte, ms int64) []byte {
	day := ms / msPerDay
	if ms%msPerDay < 0 {
		day--
	}
	if day != g.day {
		g.day = day
		g.date = time.UnixMilli(day*msPerDay).UTC().AppendFormat(g.date[:0], "2006-01-02T")
	}
	b = append(b, g.date...)
	r := ms - day*msPerDay
	b = append2(b, r/3600000)
	b = append(b, ':')
	b = append2(b, r/60000%60)
	b = append(b, ':')
	b = append2(b, r/1000%60)
	r %= 1000
	return append(b, '.', byte('0'+r/100), byte('0'+r/10%10), byte('0'+r%10), 'Z')
}

// append2 appends 0 ≤ n < 100 as two digits.
func append2(b []byte, n int64) []byte {
	return append(b, byte('0'+n/10), byte('0'+n%10))
}
