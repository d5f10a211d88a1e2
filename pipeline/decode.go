package pipeline

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// Reason classifies why a frame was rejected. Reasons are metric label values
// and dead-letter fields, so their names are stable.
type Reason uint8

// Rejection reasons.
const (
	ReasonNone Reason = iota
	ReasonTooLarge
	ReasonMalformed
	ReasonMissingNodeID
	ReasonInvalidNodeID
	ReasonMissingTimestamp
	ReasonInvalidTimestamp
	ReasonInvalidValue
	ReasonInvalidStatus
	ReasonNoData
	ReasonTooManySignals
	numReasons
)

var reasonNames = [numReasons]string{
	"none", "too_large", "malformed_json", "missing_node_id", "invalid_node_id",
	"missing_timestamp", "invalid_timestamp", "invalid_value", "invalid_status",
	"no_data", "too_many_signals",
}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Reasons lists every rejection reason except ReasonNone, in a stable order.
func Reasons() []Reason {
	rs := make([]Reason, 0, numReasons-1)
	for r := ReasonNone + 1; r < numReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}

// DecodeError reports why a payload was rejected: the reason, the byte offset
// where the decoder stopped, the field concerned (if any) and the detail.
type DecodeError struct {
	Reason Reason
	Offset int
	Field  string
	Err    error
}

func (e *DecodeError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: field %q at offset %d: %v", e.Reason, e.Field, e.Offset, e.Err)
	}
	return fmt.Sprintf("%s at offset %d: %v", e.Reason, e.Offset, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Field names used in errors, as byte slices so that passing them costs nothing.
var (
	fieldStatus    = []byte("status")
	fieldTimestamp = []byte("timestamp")
	fieldLabel     = []byte("label")
)

// Decode detail errors.
var (
	errTooLarge    = errors.New("payload exceeds the size limit")
	errSyntax      = errors.New("invalid JSON")
	errNotObject   = errors.New("payload is not a JSON object")
	errTrailing    = errors.New("data after the JSON object")
	errTooDeep     = errors.New("nesting too deep")
	errNonFinite   = errors.New("NaN and Inf are not allowed")
	errNotNumber   = errors.New("value is not a number")
	errNodeID      = errors.New("node_id must be a non-empty string of at most 256 printable characters")
	errStatus      = errors.New("status must be 0, 1 or 2")
	errNoData      = errors.New("message has neither data signals nor status")
	errTooMany     = errors.New("too many signals")
	errMissingNode = errors.New("node_id is missing")
	errMissingTime = errors.New("timestamp is missing")
)

// SignalSpec maps a field under "data" to a named signal of a kind.
type SignalSpec struct {
	Name string
	Kind SignalKind
}

// DecoderConfig configures a Decoder.
type DecoderConfig struct {
	// MaxPayload is the largest payload accepted, in bytes (default 64 KiB).
	MaxPayload int
	// Signals maps field names under "data" to signals. Default: p → pressure,
	// t → temperature, v → vibration.
	Signals map[string]SignalSpec
	// IgnoreUnmapped drops numeric fields that are not in Signals instead of
	// treating each as a generic signal with its own baseline.
	IgnoreUnmapped bool
	// MaxSignals bounds the signals per message (default 32).
	MaxSignals int
	// MaxInterned bounds the interned device and field names kept per decoder
	// (default 65536); the table is cleared when it fills.
	MaxInterned int
}

// DefaultSignals returns the default mapping of the device format.
func DefaultSignals() map[string]SignalSpec {
	return map[string]SignalSpec{
		"p": {Name: "pressure", Kind: Pressure},
		"t": {Name: "temperature", Kind: Temperature},
		"v": {Name: "vibration", Kind: Vibration},
	}
}

// DefaultDecoderConfig returns the defaults.
func DefaultDecoderConfig() DecoderConfig {
	return DecoderConfig{MaxPayload: 64 << 10, Signals: DefaultSignals(), MaxSignals: 32, MaxInterned: 1 << 16}
}

// Validate checks the configuration.
func (c *DecoderConfig) Validate() error {
	if c.MaxPayload <= 0 {
		return fmt.Errorf("max_payload must be positive, got %d", c.MaxPayload)
	}
	if c.MaxSignals <= 0 {
		return fmt.Errorf("max_signals must be positive, got %d", c.MaxSignals)
	}
	seen := map[string]string{}
	for field, s := range c.Signals {
		if field == "" || s.Name == "" {
			return fmt.Errorf("signals: field and name must be non-empty (field %q, name %q)", field, s.Name)
		}
		if other, ok := seen[s.Name]; ok {
			return fmt.Errorf("signals: fields %q and %q both map to signal %q", other, field, s.Name)
		}
		seen[s.Name] = field
	}
	return nil
}

// Decoder decodes device messages into Readings. A Decoder is not safe for
// concurrent use; give each decode worker its own.
type Decoder struct {
	cfg         DecoderConfig
	signals     map[string]SignalSpec
	names       map[string]struct{} // names of the mapped signals
	intern      map[string]string
	scratch     []byte
	scratchName []byte
	peek        Reading // reused by PeekTime
}

// NewDecoder returns a decoder; zero fields of cfg take their defaults.
func NewDecoder(cfg DecoderConfig) *Decoder {
	def := DefaultDecoderConfig()
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = def.MaxPayload
	}
	if cfg.Signals == nil {
		cfg.Signals = def.Signals
	}
	if cfg.MaxSignals == 0 {
		cfg.MaxSignals = def.MaxSignals
	}
	if cfg.MaxInterned == 0 {
		cfg.MaxInterned = def.MaxInterned
	}
	names := make(map[string]struct{}, len(cfg.Signals))
	for _, s := range cfg.Signals {
		names[s.Name] = struct{}{}
	}
	return &Decoder{cfg: cfg, signals: cfg.Signals, names: names, intern: make(map[string]string)}
}

// internBytes returns a string equal to b, reusing an earlier copy. The lookup
// m[string(b)] does not allocate.
func (d *Decoder) internBytes(b []byte) string {
	if s, ok := d.intern[string(b)]; ok {
		return s
	}
	if len(d.intern) >= d.cfg.MaxInterned {
		clear(d.intern)
	}
	s := string(b)
	d.intern[s] = s
	return s
}

// Decode parses payload into dst (which it resets first). topic and arrival
// are copied into the reading. When the message has no timestamp and arrival is
// set (live), the arrival time stands in for it. On failure it returns a
// *DecodeError and dst is unspecified.
func (d *Decoder) Decode(payload []byte, topic string, arrival int64, dst *Reading) error {
	dst.Reset()
	dst.Topic = topic
	dst.Arrival = arrival
	dst.Size = int32(min(len(payload), math.MaxInt32))
	if len(payload) > d.cfg.MaxPayload {
		return &DecodeError{Reason: ReasonTooLarge, Offset: d.cfg.MaxPayload, Err: errTooLarge}
	}
	dst.Hash = PayloadHash(payload)
	p := parser{buf: payload, scratch: &d.scratch}
	if err := d.object(&p, dst); err != nil {
		return err
	}
	if dst.Device == "" {
		return &DecodeError{Reason: ReasonMissingNodeID, Offset: p.pos, Field: "node_id", Err: errMissingNode}
	}
	if dst.Time == 0 {
		if arrival == 0 {
			return &DecodeError{Reason: ReasonMissingTimestamp, Offset: p.pos, Field: "timestamp", Err: errMissingTime}
		}
		dst.Time = arrival
	}
	if len(dst.Values) == 0 && dst.Status == NoStatus {
		return &DecodeError{Reason: ReasonNoData, Offset: p.pos, Field: "data", Err: errNoData}
	}
	return nil
}

// PeekTime extracts the event time of a payload without a full decode. It is
// used to merge several logs in time order.
func (d *Decoder) PeekTime(payload []byte) (int64, bool) {
	if err := d.Decode(payload, "", 0, &d.peek); err != nil {
		return 0, false
	}
	return d.peek.Time, true
}

func (d *Decoder) object(p *parser, dst *Reading) error {
	p.ws()
	if !p.eat('{') {
		return p.fail(ReasonMalformed, "", errNotObject)
	}
	haveTime := false
	p.ws()
	if p.eat('}') {
		return p.end()
	}
	for {
		p.ws()
		key, err := d.key(p)
		if err != nil {
			return err
		}
		switch string(key) {
		case "timestamp":
			t, err := d.timestamp(p)
			if err != nil {
				return err
			}
			dst.Time, haveTime = t, true
		case "node_id":
			if err := d.nodeID(p, dst); err != nil {
				return err
			}
		case "data":
			if err := d.data(p, dst); err != nil {
				return err
			}
		case "status":
			if err := d.status(p, dst); err != nil {
				return err
			}
		case "label":
			if err := d.label(p, dst); err != nil {
				return err
			}
		default:
			if err := p.skipValue(); err != nil {
				return err
			}
		}
		p.ws()
		if p.eat(',') {
			continue
		}
		if p.eat('}') {
			break
		}
		return p.fail(ReasonMalformed, "", errSyntax)
	}
	if haveTime && dst.Time == 0 {
		dst.Time = 1 // the epoch itself; 0 means "no timestamp"
	}
	return p.end()
}

// key parses an object key and the colon after it.
func (d *Decoder) key(p *parser) ([]byte, error) {
	k, err := p.str()
	if err != nil {
		return nil, err
	}
	p.ws()
	if !p.eat(':') {
		return nil, p.fail(ReasonMalformed, "", errSyntax)
	}
	p.ws()
	return k, nil
}

func (d *Decoder) nodeID(p *parser, dst *Reading) error {
	if p.peek() != '"' {
		if err := p.skipValue(); err != nil {
			return err
		}
		return p.fail(ReasonInvalidNodeID, "node_id", errNodeID)
	}
	s, err := p.str()
	if err != nil {
		return err
	}
	if !validID(s) {
		return p.fail(ReasonInvalidNodeID, "node_id", errNodeID)
	}
	dst.Device = d.internBytes(s)
	return nil
}

// validID accepts 1..256 bytes of valid UTF-8 without C0 or C1 control
// characters.
func validID(s []byte) bool {
	if len(s) == 0 || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && n == 1 || r >= 0x80 && r <= 0x9f {
			return false // invalid UTF-8 or a C1 control character
		}
		i += n
	}
	return true
}

func (d *Decoder) status(p *parser, dst *Reading) error {
	c := p.peek()
	if c == 'n' { // null: no status
		return p.literal("null")
	}
	if c != '-' && (c < '0' || c > '9') {
		if err := p.skipValue(); err != nil {
			return err
		}
		return p.fail(ReasonInvalidStatus, "status", errStatus)
	}
	f, err := p.number(fieldStatus)
	if err != nil {
		return err
	}
	if f != 0 && f != 1 && f != 2 {
		return p.fail(ReasonInvalidStatus, "status", errStatus)
	}
	dst.Status = int8(f)
	return nil
}

// label reads a ground-truth label: a number (0 normal, anything else
// anomalous), true/false, or null (none). Other forms are ignored: a label is
// evaluation metadata, not worth rejecting a reading over.
func (d *Decoder) label(p *parser, dst *Reading) error {
	switch c := p.peek(); {
	case c == 't':
		dst.Label = 1
		return p.literal("true")
	case c == 'f':
		dst.Label = 0
		return p.literal("false")
	case c == '-' || (c >= '0' && c <= '9'):
		f, err := p.number(fieldLabel)
		if err != nil {
			return err
		}
		if f != 0 {
			dst.Label = 1
		} else {
			dst.Label = 0
		}
		return nil
	}
	return p.skipValue()
}

func (d *Decoder) data(p *parser, dst *Reading) error {
	if !p.eat('{') {
		if p.peek() == 'n' {
			return p.literal("null")
		}
		return p.fail(ReasonMalformed, "data", errNotObject)
	}
	p.ws()
	if p.eat('}') {
		return nil
	}
	for {
		p.ws()
		key, err := d.key(p)
		if err != nil {
			return err
		}
		spec, mapped := d.signals[string(key)]
		c := p.peek()
		switch {
		case c == '-' || (c >= '0' && c <= '9') || c == 'N' || c == 'I':
			f, err := p.number(key)
			if err != nil {
				return err
			}
			if !mapped {
				// Unmapped fields become generic signals, unless disabled or
				// their name is unusable (empty, invalid UTF-8, controls):
				// such a field is ignored, not worth losing the message over.
				if d.cfg.IgnoreUnmapped || !validID(key) {
					break
				}
				spec = SignalSpec{Name: d.genericName(key), Kind: Generic}
			}
			if err := d.setValue(p, dst, spec, f); err != nil {
				return err
			}
		case c == 'n':
			if err := p.literal("null"); err != nil {
				return err
			}
		default:
			if err := p.skipValue(); err != nil {
				return err
			}
			if mapped {
				return p.fail(ReasonInvalidValue, spec.Name, errNotNumber)
			}
		}
		p.ws()
		if p.eat(',') {
			continue
		}
		if p.eat('}') {
			return nil
		}
		return p.fail(ReasonMalformed, "data", errSyntax)
	}
}

// genericName names the generic signal of an unmapped field: the field name,
// or "data.<field>" when the field name is also the name of a mapped signal
// (a field "pressure" beside the mapped "p"), so the two never mix.
func (d *Decoder) genericName(key []byte) string {
	if _, clash := d.names[string(key)]; clash {
		d.scratchName = append(append(d.scratchName[:0], "data."...), key...)
		return d.internBytes(d.scratchName)
	}
	return d.internBytes(key)
}

func (d *Decoder) setValue(p *parser, dst *Reading, spec SignalSpec, f float64) error {
	for i := range dst.Values {
		if dst.Values[i].Name == spec.Name && dst.Values[i].Kind == spec.Kind { // duplicate key: the last one wins
			dst.Values[i].V = f
			return nil
		}
	}
	if len(dst.Values) >= d.cfg.MaxSignals {
		return p.fail(ReasonTooManySignals, spec.Name, errTooMany)
	}
	dst.Values = append(dst.Values, Value{Name: spec.Name, Kind: spec.Kind, V: f})
	return nil
}

func (d *Decoder) timestamp(p *parser) (int64, error) {
	switch c := p.peek(); {
	case c == '"':
		s, err := p.str()
		if err != nil {
			return 0, err
		}
		if t, ok := parseTime(s); ok {
			return t, nil
		}
		if t, ok := epochIntToNanos(s); ok {
			return t, nil
		}
		if f, err := strconv.ParseFloat(unsafeString(s), 64); err == nil {
			if t, ok := epochToNanos(f); ok {
				return t, nil
			}
		}
		return 0, p.fail(ReasonInvalidTimestamp, "timestamp", fmt.Errorf("cannot parse %q as RFC 3339 or epoch time", truncate(s, 64)))
	case c == '-' || (c >= '0' && c <= '9'):
		f, tok, err := p.numberTok(fieldTimestamp)
		if err != nil {
			if de, ok := err.(*DecodeError); ok && de.Reason == ReasonInvalidValue {
				de.Reason = ReasonInvalidTimestamp
			}
			return 0, err
		}
		if t, ok := epochIntToNanos(tok); ok {
			return t, nil
		}
		if t, ok := epochToNanos(f); ok {
			return t, nil
		}
		return 0, p.fail(ReasonInvalidTimestamp, "timestamp", fmt.Errorf("epoch %g out of range", f))
	default:
		if err := p.skipValue(); err != nil {
			return 0, err
		}
		return 0, p.fail(ReasonInvalidTimestamp, "timestamp", errors.New("timestamp must be a string or a number"))
	}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// unsafeString views b as a string without copying. Only for calls that do not
// retain the string (strconv clones it into its errors).
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// parser is a minimal JSON scanner over one payload.
type parser struct {
	buf     []byte
	pos     int
	scratch *[]byte // decoding buffer for strings with escapes
}

func (p *parser) fail(r Reason, field string, err error) error {
	return &DecodeError{Reason: r, Offset: p.pos, Field: field, Err: err}
}

func (p *parser) ws() {
	for p.pos < len(p.buf) {
		switch p.buf[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *parser) peek() byte {
	if p.pos < len(p.buf) {
		return p.buf[p.pos]
	}
	return 0
}

func (p *parser) eat(c byte) bool {
	if p.pos < len(p.buf) && p.buf[p.pos] == c {
		p.pos++
		return true
	}
	return false
}

func (p *parser) end() error {
	p.ws()
	if p.pos != len(p.buf) {
		return p.fail(ReasonMalformed, "", errTrailing)
	}
	return nil
}

func (p *parser) literal(lit string) error {
	if len(p.buf)-p.pos >= len(lit) && string(p.buf[p.pos:p.pos+len(lit)]) == lit {
		p.pos += len(lit)
		return nil
	}
	return p.fail(ReasonMalformed, "", errSyntax)
}

// str parses a JSON string. Without escapes it returns a slice of the input;
// with escapes it decodes into *scratch and returns that.
func (p *parser) str() ([]byte, error) {
	if !p.eat('"') {
		return nil, p.fail(ReasonMalformed, "", errSyntax)
	}
	start := p.pos
	for p.pos < len(p.buf) {
		c := p.buf[p.pos]
		switch {
		case c == '"':
			s := p.buf[start:p.pos]
			p.pos++
			return s, nil
		case c == '\\':
			return p.strEscaped(start)
		case c < 0x20:
			return nil, p.fail(ReasonMalformed, "", errSyntax)
		}
		p.pos++
	}
	return nil, p.fail(ReasonMalformed, "", errSyntax)
}

func (p *parser) strEscaped(start int) ([]byte, error) {
	out := append((*p.scratch)[:0], p.buf[start:p.pos]...)
	for p.pos < len(p.buf) {
		c := p.buf[p.pos]
		switch {
		case c == '"':
			p.pos++
			*p.scratch = out
			return out, nil
		case c < 0x20:
			return nil, p.fail(ReasonMalformed, "", errSyntax)
		case c != '\\':
			out = append(out, c)
			p.pos++
			continue
		}
		if p.pos+1 >= len(p.buf) {
			break
		}
		e := p.buf[p.pos+1]
		p.pos += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := p.hex4()
			if !ok {
				return nil, p.fail(ReasonMalformed, "", errSyntax)
			}
			if r >= 0xD800 && r < 0xDC00 && p.pos+1 < len(p.buf) && p.buf[p.pos] == '\\' && p.buf[p.pos+1] == 'u' {
				save := p.pos
				p.pos += 2
				if r2, ok := p.hex4(); ok && r2 >= 0xDC00 && r2 < 0xE000 {
					r = (r-0xD800)<<10 + (r2 - 0xDC00) + 0x10000
				} else {
					p.pos = save
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, p.fail(ReasonMalformed, "", errSyntax)
		}
	}
	return nil, p.fail(ReasonMalformed, "", errSyntax)
}

func (p *parser) hex4() (rune, bool) {
	if len(p.buf)-p.pos < 4 {
		return 0, false
	}
	var r rune
	for _, c := range p.buf[p.pos : p.pos+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	p.pos += 4
	return r, true
}

// number parses a JSON number. The non-JSON tokens NaN, Infinity and -Infinity
// are recognised so that they are reported as invalid values, not as syntax.
// field names the value in errors; it is converted to a string only on failure
// so that the success path does not allocate.
func (p *parser) number(field []byte) (float64, error) {
	f, _, err := p.numberTok(field)
	return f, err
}

// numberTok is number that also returns the number's text.
func (p *parser) numberTok(field []byte) (float64, []byte, error) {
	start := p.pos
	p.eat('-')
	switch c := p.peek(); {
	case c == 'N' || c == 'I':
		for p.pos < len(p.buf) && (p.buf[p.pos] >= 'A' && p.buf[p.pos] <= 'z') {
			p.pos++
		}
		switch string(p.buf[start:p.pos]) {
		case "NaN", "Infinity", "-Infinity", "Inf", "-Inf":
			return 0, nil, p.fail(ReasonInvalidValue, string(field), errNonFinite)
		}
		return 0, nil, p.fail(ReasonMalformed, string(field), errSyntax)
	case c == '0':
		p.pos++
	case c >= '1' && c <= '9':
		p.digits()
	default:
		return 0, nil, p.fail(ReasonMalformed, string(field), errSyntax)
	}
	if p.eat('.') {
		if p.digits() == 0 {
			return 0, nil, p.fail(ReasonMalformed, string(field), errSyntax)
		}
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		p.pos++
		if c := p.peek(); c == '+' || c == '-' {
			p.pos++
		}
		if p.digits() == 0 {
			return 0, nil, p.fail(ReasonMalformed, string(field), errSyntax)
		}
	}
	tok := p.buf[start:p.pos]
	f, err := strconv.ParseFloat(unsafeString(tok), 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, nil, p.fail(ReasonInvalidValue, string(field), errNonFinite)
	}
	return f, tok, nil
}

func (p *parser) digits() int {
	n := 0
	for p.pos < len(p.buf) && p.buf[p.pos] >= '0' && p.buf[p.pos] <= '9' {
		p.pos++
		n++
	}
	return n
}

// skipValue skips one JSON value of any type, validating its syntax.
func (p *parser) skipValue() error { return p.skip(0) }

func (p *parser) skip(depth int) error {
	if depth > 64 {
		return p.fail(ReasonMalformed, "", errTooDeep)
	}
	p.ws()
	switch c := p.peek(); c {
	case '{':
		p.pos++
		p.ws()
		if p.eat('}') {
			return nil
		}
		for {
			p.ws()
			if _, err := p.str(); err != nil {
				return err
			}
			p.ws()
			if !p.eat(':') {
				return p.fail(ReasonMalformed, "", errSyntax)
			}
			if err := p.skip(depth + 1); err != nil {
				return err
			}
			p.ws()
			if p.eat(',') {
				continue
			}
			if p.eat('}') {
				return nil
			}
			return p.fail(ReasonMalformed, "", errSyntax)
		}
	case '[':
		p.pos++
		p.ws()
		if p.eat(']') {
			return nil
		}
		for {
			if err := p.skip(depth + 1); err != nil {
				return err
			}
			p.ws()
			if p.eat(',') {
				continue
			}
			if p.eat(']') {
				return nil
			}
			return p.fail(ReasonMalformed, "", errSyntax)
		}
	case '"':
		_, err := p.str()
		return err
	case 't':
		return p.literal("true")
	case 'f':
		return p.literal("false")
	case 'n':
		return p.literal("null")
	default:
		_, err := p.number(nil)
		return err
	}
}

// XXH64 primes.
const (
	xxPrime1 uint64 = 11400714785074694791
	xxPrime2 uint64 = 14029467366897019727
	xxPrime3 uint64 = 1609587929392839161
	xxPrime4 uint64 = 9650029242287828579
	xxPrime5 uint64 = 2870177450012600261
)

// PayloadHash returns the XXH64 hash (seed 0) of b. It is deterministic across
// runs and platforms (unlike hash/maphash, whose seed is per process), so a
// replay recognises the same re-sent payloads as the live run did, and it
// reads eight bytes at a time: a typical 120-byte payload costs about 20 ns.
func PayloadHash(b []byte) uint64 {
	n := len(b)
	var h uint64
	if n >= 32 {
		v1 := xxPrime1
		v1 += xxPrime2
		v2 := xxPrime2
		v3 := uint64(0)
		v4 := uint64(0)
		v4 -= xxPrime1
		for len(b) >= 32 {
			v1 = xxRound(v1, binary.LittleEndian.Uint64(b))
			v2 = xxRound(v2, binary.LittleEndian.Uint64(b[8:]))
			v3 = xxRound(v3, binary.LittleEndian.Uint64(b[16:]))
			v4 = xxRound(v4, binary.LittleEndian.Uint64(b[24:]))
			b = b[32:]
		}
		h = bits.RotateLeft64(v1, 1) + bits.RotateLeft64(v2, 7) + bits.RotateLeft64(v3, 12) + bits.RotateLeft64(v4, 18)
		h = xxMerge(h, v1)
		h = xxMerge(h, v2)
		h = xxMerge(h, v3)
		h = xxMerge(h, v4)
	} else {
		h = xxPrime5
	}
	h += uint64(n)
	for ; len(b) >= 8; b = b[8:] {
		h ^= xxRound(0, binary.LittleEndian.Uint64(b))
		h = bits.RotateLeft64(h, 27)*xxPrime1 + xxPrime4
	}
	if len(b) >= 4 {
		h ^= uint64(binary.LittleEndian.Uint32(b)) * xxPrime1
		h = bits.RotateLeft64(h, 23)*xxPrime2 + xxPrime3
		b = b[4:]
	}
	for _, c := range b {
		h ^= uint64(c) * xxPrime5
		h = bits.RotateLeft64(h, 11) * xxPrime1
	}
	h ^= h >> 33
	h *= xxPrime2
	h ^= h >> 29
	h *= xxPrime3
	h ^= h >> 32
	return h
}

func xxRound(acc, input uint64) uint64 {
	acc += input * xxPrime2
	return bits.RotateLeft64(acc, 31) * xxPrime1
}

func xxMerge(acc, val uint64) uint64 {
	acc ^= xxRound(0, val)
	return acc*xxPrime1 + xxPrime4
}
