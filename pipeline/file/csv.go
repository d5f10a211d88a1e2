package file

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/vigil-iot/vigil/pipeline"
)

// CSVMapping names the CSV columns with a role in the device format. Header
// names are matched ignoring case and surrounding space; empty fields take the
// defaults. Every other column is a data signal named by its header.
//
// Each record becomes one payload:
//
//	timestamp,value              {"timestamp":"2014-04-01 00:05:00","node_id":"<device>","data":{"value":20.0}}
//	2014-04-01 00:05:00,20.0
//
// Numbers are copied verbatim (other forms ParseFloat accepts, such as ".5",
// are normalised); any other non-empty cell becomes a JSON string, which the
// decoder rejects with a reason rather than losing it. Empty cells are left
// out. A time cell of digits only is an epoch and stays a number.
type CSVMapping struct {
	// Time is the event-time column (default "timestamp"), emitted as
	// "timestamp". A header without it is an error.
	Time string
	// Device is the device column (default "node_id"), emitted as "node_id".
	// Without one, the device is named after the file: the base name without
	// ".gz" and one more extension (plant/art_flatline.csv → art_flatline), or
	// "stdin".
	Device string
	// Status is the optional device-status column (default "status").
	Status string
	// Label is the optional ground-truth column (default "label"), emitted as a
	// top-level "label" field for evaluation; the decoder ignores it.
	Label string
	// Comma is the field separator; 0 detects a comma, a semicolon or a
	// tab from the header line and the first record (see detectComma):
	// spreadsheet exports in locales with a decimal comma write ";". Cells
	// are always read with a decimal point.
	Comma rune
}

func (m CSVMapping) withDefaults() CSVMapping {
	def := func(s *string, d string) {
		if *s = strings.TrimSpace(*s); *s == "" {
			*s = d
		}
	}
	def(&m.Time, "timestamp")
	def(&m.Device, "node_id")
	def(&m.Status, "status")
	def(&m.Label, "label")
	return m
}

func (m CSVMapping) validate() error {
	m = m.withDefaults()
	if m.Comma != 0 && (m.Comma == '"' || m.Comma == '\r' || m.Comma == '\n' || m.Comma == utf8.RuneError || !utf8.ValidRune(m.Comma)) {
		return fmt.Errorf("csv: %q cannot separate fields", m.Comma)
	}
	names := [...]struct{ key, col string }{
		{"time", m.Time}, {"device", m.Device}, {"status", m.Status}, {"label", m.Label},
	}
	for i := range names {
		for j := range i {
			if strings.EqualFold(names[i].col, names[j].col) {
				return fmt.Errorf("csv.%s: column %q is mapped as %s already", names[i].key, names[i].col, names[j].key)
			}
		}
	}
	return nil
}

// csvSource reads CSV records and synthesises device-format payloads.
type csvSource struct {
	in      *input
	m       CSVMapping
	maxLine int
	r       *csv.Reader

	timeCol, deviceCol, statusCol, labelCol int // -1 when absent
	data                                    []dataColumn
	device                                  []byte // `"node_id":"<name>"` when there is no device column
	line                                    int64  // line of the last record read
	payload                                 []byte
}

type dataColumn struct {
	col int
	key []byte // `"name":`
}

func newCSVSource(in *input, name string, opt Options) *csvSource {
	s := &csvSource{in: in, m: opt.CSV.withDefaults(), maxLine: opt.maxLine()}
	s.device = appendJSONString([]byte(`"node_id":`), deviceName(name))
	return s
}

// start detects gzip and reads the header.
func (s *csvSource) start(ctx context.Context) error {
	if err := s.in.start(ctx); err != nil {
		return err
	}
	s.r = csv.NewReader(s.in.br) // reads straight from our buffer: no second one
	s.r.ReuseRecord = true
	if s.r.Comma = s.m.Comma; s.r.Comma == 0 {
		lines := s.in.firstLines(2)
		var header, record []byte
		if len(lines) > 0 {
			header = lines[0]
		}
		if len(lines) > 1 {
			record = lines[1]
		}
		s.r.Comma = detectComma(header, record)
	}
	header, err := s.r.Read()
	if err == io.EOF {
		s.in.eof = true
		return io.EOF
	}
	if err != nil {
		if !errors.As(err, new(*csv.ParseError)) {
			return s.in.fail(ctx, err, 0)
		}
		s.in.err = fmt.Errorf("file: read %q: csv header: %w", s.in.name, err)
		return s.in.err
	}
	s.line = 1
	s.timeCol, s.deviceCol, s.statusCol, s.labelCol = -1, -1, -1, -1
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff") // a byte-order mark, as spreadsheet exports write
		}
		h = strings.TrimSpace(h)
		switch {
		case s.timeCol < 0 && strings.EqualFold(h, s.m.Time):
			s.timeCol = i
		case s.deviceCol < 0 && strings.EqualFold(h, s.m.Device):
			s.deviceCol = i
		case s.statusCol < 0 && strings.EqualFold(h, s.m.Status):
			s.statusCol = i
		case s.labelCol < 0 && strings.EqualFold(h, s.m.Label):
			s.labelCol = i
		default:
			key := append(appendJSONString(nil, h), ':')
			s.data = append(s.data, dataColumn{col: i, key: key})
		}
	}
	if s.timeCol < 0 {
		s.in.err = fmt.Errorf("file: read %q: csv header %q has no time column %q", s.in.name, header, s.m.Time)
		return s.in.err
	}
	return nil
}

// separators are the field separators detectComma chooses from.
const separators = ",;\t"

// countSeparators counts each of separators outside quotes in line.
func countSeparators(line []byte) (n [len(separators)]int) {
	quoted := false
	for _, c := range line {
		if c == '"' {
			quoted = !quoted
		} else if i := strings.IndexByte(separators, c); i >= 0 && !quoted {
			n[i]++
		}
	}
	return n
}

// detectComma returns the separator of a file from its header line and the
// first record after it (nil when there is none): of a comma, a semicolon
// and a tab, the one found most often outside quotes among those that split
// the record into as many cells as the header, so that a unit in a header
// cell ("flow, l/min") does not pass for the separator; a comma when none
// is found.
func detectComma(header, record []byte) rune {
	h := countSeparators(header)
	r := countSeparators(record)
	best, bestN := ',', 0
	for _, consistent := range []bool{true, false} {
		for i := range len(separators) {
			if h[i] > bestN && (!consistent || record == nil || r[i] == h[i]) {
				best, bestN = rune(separators[i]), h[i]
			}
		}
		if bestN > 0 {
			return best
		}
	}
	return ','
}

// ReadBatch implements pipeline.Source.
func (s *csvSource) ReadBatch(ctx context.Context, b *pipeline.FrameBatch, max int) error {
	if err := s.in.begin(ctx); err != nil {
		return err
	}
	if stop := s.in.watch(ctx); stop != nil {
		defer stop()
	}
	if s.r == nil {
		if err := s.start(ctx); err != nil {
			return err
		}
	}
	for n := 0; n < max || n == 0; n++ {
		if n > 0 && s.in.live && !s.in.lineBuffered() {
			return nil
		}
		if n%ctxEvery == ctxEvery-1 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rec, err := s.r.Read()
		if err == io.EOF {
			s.in.eof = true
			return io.EOF
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return s.in.fail(ctx, err, s.line)
			}
			// Pass the problem on as a payload the decoder rejects and counts.
			s.line = int64(pe.StartLine)
			if pe.Err == csv.ErrFieldCount {
				s.payload = fmt.Appendf(s.payload[:0], "csv: line %d: %v", pe.Line, pe.Err)
			} else {
				s.payload = fmt.Appendf(s.payload[:0], "csv: line %d, column %d: %v", pe.Line, pe.Column, pe.Err)
			}
			b.Add("", s.payload, 0, s.in.name, s.line)
			continue
		}
		line, _ := s.r.FieldPos(0)
		s.line = int64(line)
		s.payload = s.appendPayload(s.payload[:0], rec)
		p := s.payload
		if len(p) > s.maxLine {
			p = p[:s.maxLine+1]
		}
		b.Add("", p, 0, s.in.name, s.line)
	}
	return nil
}

// appendPayload appends the device-format payload of rec to p.
func (s *csvSource) appendPayload(p []byte, rec []string) []byte {
	p = append(p, '{')
	if c := cell(rec, s.timeCol); c != "" {
		p = append(p, `"timestamp":`...)
		if allDigits(c) { // an epoch
			for len(c) > 1 && c[0] == '0' {
				c = c[1:] // JSON numbers have no leading zeros
			}
			p = append(p, c...)
		} else {
			p = appendJSONString(p, c)
		}
	}
	if s.deviceCol < 0 {
		p = append(comma(p), s.device...)
	} else if c := cell(rec, s.deviceCol); c != "" {
		p = append(comma(p), `"node_id":`...)
		p = appendJSONString(p, c)
	}
	if c := cell(rec, s.statusCol); c != "" {
		p = append(comma(p), `"status":`...)
		p = appendValue(p, c)
	}
	p = append(comma(p), `"data":{`...)
	for _, d := range s.data {
		if c := cell(rec, d.col); c != "" {
			p = append(comma(p), d.key...)
			p = appendValue(p, c)
		}
	}
	p = append(p, '}')
	if c := cell(rec, s.labelCol); c != "" {
		p = append(p, `,"label":`...)
		p = appendValue(p, c)
	}
	return append(p, '}')
}

// Close implements pipeline.Source.
func (s *csvSource) Close() error { return s.in.Close() }

// cell returns rec[i] without surrounding space, or "" when i is not a column
// of rec.
func cell(rec []string, i int) string {
	if i < 0 || i >= len(rec) {
		return ""
	}
	return strings.TrimSpace(rec[i])
}

// comma appends the separator before a member unless p ends an object's opening.
func comma(p []byte) []byte {
	if len(p) > 0 && p[len(p)-1] != '{' {
		p = append(p, ',')
	}
	return p
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// appendValue appends c as a JSON number when it is one, or as a string.
func appendValue(p []byte, c string) []byte {
	if isJSONNumber(c) {
		return append(p, c...)
	}
	if f, err := strconv.ParseFloat(c, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
		return strconv.AppendFloat(p, f, 'g', -1, 64) // ".5", "+1", "1." and the like
	}
	return appendJSONString(p, c)
}

// isJSONNumber reports whether s is a number in JSON's grammar (RFC 8259).
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i == len(s):
		return false
	case s[i] == '0':
		i++
	case s[i] >= '1' && s[i] <= '9':
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == j {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == j {
			return false
		}
	}
	return i == len(s)
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// encoding/json does.
func appendJSONString(p []byte, s string) []byte { return pipeline.AppendJSONString(p, s) }
