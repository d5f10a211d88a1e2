package jetstream

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/vigil-iot/vigil/pipeline"
)

// Subject prefixes of the stream.
const (
	// TelemetryPrefix is the prefix of the partitioned subjects:
	// TelemetryPrefix.<partition>.<token>.
	TelemetryPrefix = "vigil.telemetry"
	// InPrefix is where devices that speak NATS (or MQTT to nats-server)
	// publish, InPrefix.<token>; the stream's subject transform moves such
	// messages to their partition (Config.DirectIngest).
	InPrefix = "vigil.in"
)

// Reserved tokens: they start with "_", which Escape never lets a device
// token start with, so no device can be taken for them.
const (
	// TickToken is the token of tick messages: the bridge's wall clock (Unix
	// nanoseconds, decimal) for a partition that saw nothing for a while.
	TickToken = "_tick"
	// UnknownToken is the token of messages whose device could not be read
	// from the payload; they still reach a partition so that the rejection
	// is counted.
	UnknownToken = "_unknown"
)

// TopicHeader carries the MQTT topic a bridged message arrived on.
const TopicHeader = "Vigil-Topic"

// Subject returns the subject of device's messages among n partitions.
func Subject(device string, n int) string {
	tok := Escape(device)
	return PartitionSubject(pipeline.Partition(tok, n), tok)
}

// PartitionSubject returns TelemetryPrefix.<p>.<token>; token must already
// be one subject token (Escape, TickToken, UnknownToken).
func PartitionSubject(p int, token string) string {
	return TelemetryPrefix + "." + strconv.Itoa(p) + "." + token
}

// PartitionFilter is the subject filter of partition p's messages.
func PartitionFilter(p int) string {
	return TelemetryPrefix + "." + strconv.Itoa(p) + ".>"
}

// ParseSubject splits a telemetry subject into its partition and token.
func ParseSubject(subject string) (p int, token string, err error) {
	rest, ok := strings.CutPrefix(subject, TelemetryPrefix+".")
	if !ok {
		return 0, "", fmt.Errorf("jetstream: subject %q is not under %s", subject, TelemetryPrefix)
	}
	ps, token, ok := strings.Cut(rest, ".")
	if !ok || token == "" || strings.Contains(token, ".") {
		return 0, "", fmt.Errorf("jetstream: subject %q: want %s.<partition>.<token>", subject, TelemetryPrefix)
	}
	p, err = strconv.Atoi(ps)
	if err != nil || p < 0 {
		return 0, "", fmt.Errorf("jetstream: subject %q: partition %q is not a number", subject, ps)
	}
	return p, token, nil
}

// PartitionOf returns the partition, of n, that device's messages go to:
// pipeline.Partition of its token (Escape), which is what the server's
// subject mapping {{partition(n,1)}} computes for InPrefix.<token>.
func PartitionOf(device string, n int) int {
	return pipeline.Partition(Escape(device), n)
}

// escaped reports whether byte c must be percent-encoded in a token: the
// separators and wildcards of NATS subjects, white space and control bytes,
// and % itself so that the encoding can be reversed.
func escaped(c byte) bool {
	return c <= ' ' || c == 0x7f || c == '.' || c == '*' || c == '>' || c == '%'
}

const hexDigits = "0123456789ABCDEF"

// Escape returns device as one NATS subject token: the bytes a token cannot
// hold (. * > white space, control bytes) and % are written %XX (upper-case
// hex), and so is a leading "_", which is reserved for TickToken and
// UnknownToken. Every other byte, UTF-8 included, is kept, so a plain ID
// such as "pump-7" is its own token. The encoding is one-to-one (Unescape
// reverses it). Escape("") is "", which is not a token: device IDs are
// never empty.
func Escape(device string) string {
	n := 0
	for i := 0; i < len(device); i++ {
		if escaped(device[i]) || i == 0 && device[i] == '_' {
			n++
		}
	}
	if n == 0 {
		return device
	}
	var b strings.Builder
	b.Grow(len(device) + 2*n)
	for i := 0; i < len(device); i++ {
		c := device[i]
		if escaped(c) || i == 0 && c == '_' {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// ErrBadToken is returned by Unescape for a token Escape cannot have made.
var ErrBadToken = errors.New("jetstream: malformed device token")

// Unescape reverses Escape.
func Unescape(token string) (string, error) {
	if !strings.Contains(token, "%") {
		if strings.HasPrefix(token, "_") || strings.ContainsFunc(token, func(r rune) bool { return r < 0x80 && escaped(byte(r)) }) {
			return "", fmt.Errorf("%w: %q", ErrBadToken, token)
		}
		return token, nil
	}
	var b strings.Builder
	b.Grow(len(token))
	for i := 0; i < len(token); i++ {
		c := token[i]
		if c != '%' {
			if escaped(c) || i == 0 && c == '_' {
				return "", fmt.Errorf("%w: %q", ErrBadToken, token)
			}
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(token) {
			return "", fmt.Errorf("%w: %q", ErrBadToken, token)
		}
		hi, lo := unhex(token[i+1]), unhex(token[i+2])
		if hi < 0 || lo < 0 {
			return "", fmt.Errorf("%w: %q", ErrBadToken, token)
		}
		d := byte(hi<<4 | lo)
		if !escaped(d) && !(i == 0 && d == '_') {
			return "", fmt.Errorf("%w: %q (%%%02X needs no escape)", ErrBadToken, token, d)
		}
		b.WriteByte(d)
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}
