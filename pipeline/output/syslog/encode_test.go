package syslog

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// rawMessage is a formatter whose MSG is the alert's Message, as is.
var rawMessage = output.FormatterFunc(func(dst []byte, a *pipeline.Alert) []byte {
	return append(dst, a.Message...)
})

// jsonFormatter renders the alert as Vigil's JSON.
var jsonFormatter = output.FormatterFunc(func(dst []byte, a *pipeline.Alert) []byte {
	return a.AppendJSON(dst)
})

func testEncoder(f output.Formatter) *encoder {
	return &encoder{
		facility: 16, hostname: "plant-a", appName: "vigil", procID: "4242",
		msgID: "kind", sdID: DefaultSDID, max: DefaultMaxMessage,
		framing: FramingOctetCounting, f: f,
	}
}

var t0 = time.Date(2026, 3, 14, 9, 26, 53, 589793238, time.UTC)

func testAlert() pipeline.Alert {
	return pipeline.Alert{
		ID: "ep-1", Time: t0.UnixNano(), Started: t0.Add(-time.Minute).UnixNano(),
		Device: "pump-7", Kind: "overpressure", Detector: "overpressure.spike",
		Severity: pipeline.Critical, State: pipeline.Firing, Signal: "pressure",
		Value: 9.5, Threshold: 8, Unit: "bar", Message: "pressure 9.5 bar above 8 bar",
	}
}

func mustParse(t *testing.T, b []byte) message {
	t.Helper()
	m, err := parseMessage(b)
	if err != nil {
		t.Fatalf("parse %q: %v", b, err)
	}
	return m
}

func TestMessage(t *testing.T) {
	e := testEncoder(rawMessage)
	a := testAlert()
	got := string(e.appendMessage(nil, &a))
	want := `<130>1 2026-03-14T09:26:53.589793Z plant-a vigil 4242 overpressure ` +
		`[vigil@32473 id="ep-1" event="ep-1-firing-` + strconv.FormatInt(a.Time, 10) + `-critical" device="pump-7" kind="overpressure" ` +
		`detector="overpressure.spike" severity="critical" state="firing" signal="pressure"] pressure 9.5 bar above 8 bar`
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	m := mustParse(t, []byte(got))
	if m.facility != 16 || m.severity != 2 || m.BOM || string(m.Msg) != a.Message {
		t.Errorf("parsed %+v", m)
	}
	if !m.timestampUTC.Equal(t0.Truncate(time.Microsecond)) {
		t.Errorf("timestamp %v; want %v", m.timestampUTC, t0.Truncate(time.Microsecond))
	}
}

// TestRFC5424Examples encodes what the examples of RFC 5424 §6.5 can be
// made of and checks that the test's parser reads all four examples.
func TestRFC5424Examples(t *testing.T) {
	// Example 1 (with "-" for PROCID and no SD). The RFC's example has a
	// BOM before an ASCII MSG; Vigil sends an ASCII MSG as MSG-ANY,
	// without it (see needsBOM).
	e := &encoder{facility: 4, hostname: "mymachine.example.com", appName: "su", procID: "-",
		msgID: "kind", max: 2048, f: rawMessage}
	a := pipeline.Alert{
		Time: time.Date(2003, 10, 11, 22, 14, 15, 3e6, time.UTC).UnixNano(), Kind: "ID47",
		Severity: pipeline.Critical, State: pipeline.Firing,
		Message: "'su root' failed for lonvick on /dev/pts/8",
	}
	got := string(e.appendMessage(nil, &a))
	want := "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed for lonvick on /dev/pts/8"
	if got != want {
		t.Errorf("example 1: got\n%q\nwant\n%q", got, want)
	}
	// With a non-ASCII MSG the BOM is there, as in the RFC's example.
	a.Message = "'su root' failed for lonvick on /dev/pts/8 — again"
	got = string(e.appendMessage(nil, &a))
	if !strings.HasSuffix(got, " - "+bom+a.Message) {
		t.Errorf("non-ASCII MSG: got %q; want the BOM before MSG", got)
	}
	// Example 2: an offset timestamp is sent in UTC.
	a.Time = time.Date(2003, 8, 24, 5, 14, 15, 3000, time.FixedZone("", -7*3600)).UnixNano()
	a.Message = ""
	got = string(e.appendMessage(nil, &a))
	if want := "<34>1 2003-08-24T12:14:15.000003Z mymachine.example.com su - ID47 -"; got != want {
		t.Errorf("example 2: got %q; want %q", got, want)
	}

	for _, tc := range []struct {
		in     string
		pri    int
		sd     int
		msg    string
		hasBOM bool
	}{
		{"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - " + bom + "'su root' failed for lonvick on /dev/pts/8", 34, 0, "'su root' failed for lonvick on /dev/pts/8", true},
		{"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.", 165, 0, "%% It's time to make the do-nuts.", false},
		{`<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] ` + bom + "An application event log entry...", 165, 1, "An application event log entry...", true},
		{`<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]`, 165, 2, "", false},
	} {
		m := mustParse(t, []byte(tc.in))
		if m.PRI != tc.pri || len(m.SD) != tc.sd || string(m.Msg) != tc.msg || m.BOM != tc.hasBOM {
			t.Errorf("parse %q: got %+v", tc.in, m)
		}
	}
	m := mustParse(t, []byte(`<165>1 2003-10-11T22:14:15.003Z h a - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]`))
	if v, _ := m.param("examplePriority@32473", "class"); v != "high" {
		t.Errorf("class = %q; want high", v)
	}
	// The parser is strict.
	for _, bad := range []string{
		"<192>1 - h a p m -", "<01>1 - h a p m -", "<1>2 - h a p m -", "<1>1 -  a p m -",
		"<1>1 2003-10-11T22:14:15.0000003Z h a p m -", "<1>1 2003-10-11 h a p m -",
		`<1>1 - h a p m [x@1 a="]"]`, `<1>1 - h a p m [x@1 a="b"`, `<1>1 - h a p m [x@1 a="b"][x@1 b="c"]`,
		"<1>1 - h a p " + strings.Repeat("m", 33) + " -", "<1>1 - h a p m -x", "<1>1 - h a p m - " + bom + "\xff",
	} {
		if _, err := parseMessage([]byte(bad)); err == nil {
			t.Errorf("parse %q: accepted", bad)
		}
	}
}

func TestPRI(t *testing.T) {
	for _, tc := range []struct {
		facility string
		sev      pipeline.Severity
		state    pipeline.AlertState
		want     int
	}{
		{"kern", pipeline.Critical, pipeline.Firing, 2},
		{"user", pipeline.Warning, pipeline.Firing, 12},
		{"auth", pipeline.Critical, pipeline.Firing, 34},
		{"authpriv", pipeline.Critical, pipeline.Resolved, 85},
		{"security", pipeline.Warning, pipeline.Firing, 108},
		{"log_audit", pipeline.Critical, pipeline.Firing, 106},
		{"local0", pipeline.Critical, pipeline.Firing, 130},
		{"local0", pipeline.Warning, pipeline.Firing, 132},
		{"local0", pipeline.Critical, pipeline.Resolved, 133},
		{"local0", pipeline.Warning, pipeline.Resolved, 133},
		{"local7", pipeline.Critical, pipeline.Firing, 186},
		{"local7", pipeline.Warning, pipeline.Resolved, 189},
	} {
		e := testEncoder(rawMessage)
		e.facility = facilities[tc.facility]
		a := testAlert()
		a.Severity, a.State = tc.sev, tc.state
		if got := mustParse(t, e.appendMessage(nil, &a)).PRI; got != tc.want {
			t.Errorf("%s %s %s: PRI %d; want %d", tc.facility, tc.sev, tc.state, got, tc.want)
		}
	}
}

func TestTimestamp(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "2026-01-02T03:04:05Z"},
		{time.Date(2026, 1, 2, 3, 4, 5, 5e8, time.UTC), "2026-01-02T03:04:05.5Z"},
		{time.Date(2026, 1, 2, 3, 4, 5, 123456999, time.UTC), "2026-01-02T03:04:05.123456Z"}, // truncated, not rounded
		{time.Date(2026, 1, 2, 3, 4, 5, 999, time.UTC), "2026-01-02T03:04:05Z"},
		{time.Date(2026, 1, 2, 5, 4, 5, 0, time.FixedZone("", 2*3600)), "2026-01-02T03:04:05Z"},
	} {
		e := testEncoder(rawMessage)
		a := pipeline.Alert{Time: tc.t.UnixNano()}
		if got := mustParse(t, e.appendMessage(nil, &a)).Timestamp; got != tc.want {
			t.Errorf("%v: got %s; want %s", tc.t, got, tc.want)
		}
	}
	e := testEncoder(rawMessage)
	if got := mustParse(t, e.appendMessage(nil, &pipeline.Alert{})).Timestamp; got != "-" {
		t.Errorf("no time: got %s; want -", got)
	}
}

func TestHeaderFields(t *testing.T) {
	long := strings.Repeat("h", 300)
	if got := headerField(long, maxHostname); len(got) != 255 {
		t.Errorf("hostname: %d characters; want 255", len(got))
	}
	for _, tc := range []struct{ in, want string }{
		{"", "-"},
		{"traffic.flood", "traffic.flood"},
		{"a b\tc", "a_b_c"},
		{"température", "temp_rature"},
		{"\xff\xfe", "__"},
		{strings.Repeat("k", 40), strings.Repeat("k", 32)},
		{strings.Repeat("é", 40), strings.Repeat("_", 32)},
	} {
		e := testEncoder(rawMessage)
		a := testAlert()
		a.Kind = tc.in
		m := mustParse(t, e.appendMessage(nil, &a))
		if m.MsgID != tc.want {
			t.Errorf("kind %q: MSGID %q; want %q", tc.in, m.MsgID, tc.want)
		}
	}
	e := testEncoder(rawMessage)
	a := testAlert()
	for field, want := range map[string]string{"detector": a.Detector, "state": "firing", "severity": "critical", "signal": "pressure", "none": "-"} {
		e.msgID = field
		if got := mustParse(t, e.appendMessage(nil, &a)).MsgID; got != want {
			t.Errorf("msg_id %s: MSGID %q; want %q", field, got, want)
		}
	}
}

func TestStructuredDataEscaping(t *testing.T) {
	e := testEncoder(rawMessage)
	a := testAlert()
	a.ID = `ep"1\x]`
	a.Device = `pump "7" \ [line] ]]`
	a.Signal = "bad\xffutf8 ü\n"
	a.Detector = `\\"]`
	b := e.appendMessage(nil, &a)
	if !bytes.Contains(b, []byte(`device="pump \"7\" \\ [line\] \]\]"`)) {
		t.Errorf("device not escaped: %s", b)
	}
	if !bytes.Contains(b, []byte(`detector="\\\\\"\]"`)) {
		t.Errorf("detector not escaped: %s", b)
	}
	m := mustParse(t, b)
	for name, want := range map[string]string{
		"id": a.ID, "device": a.Device, "signal": "bad\uFFFDutf8 ü\n", "detector": a.Detector,
		"event": a.EventID(), "kind": a.Kind, "severity": "critical", "state": "firing",
	} {
		if got, _ := m.param(DefaultSDID, name); got != want {
			t.Errorf("%s = %q; want %q", name, got, want)
		}
	}
	e.sdID = ""
	if m := mustParse(t, e.appendMessage(nil, &a)); m.SD != nil {
		t.Errorf("structured data off: got %+v", m.SD)
	}
}

func TestBOM(t *testing.T) {
	for _, tc := range []struct {
		msg     string
		wantBOM bool
		wantMsg string
	}{
		{"plain ascii", false, "plain ascii"},
		{"température 80 °C", true, "température 80 °C"},
		{bom + "already", true, "already"},
		{"latin1 \xe9", false, "latin1 \xe9"},
		{bom + bom + "\xff", false, "\xff"},
	} {
		e := testEncoder(rawMessage)
		a := testAlert()
		a.Message = tc.msg
		m := mustParse(t, e.appendMessage(nil, &a))
		if m.BOM != tc.wantBOM || string(m.Msg) != tc.wantMsg {
			t.Errorf("%q: BOM %v MSG %q; want %v %q", tc.msg, m.BOM, m.Msg, tc.wantBOM, tc.wantMsg)
		}
	}
	e := testEncoder(rawMessage)
	a := testAlert()
	a.Message = ""
	if m := mustParse(t, e.appendMessage(nil, &a)); m.HasMsg {
		t.Errorf("empty MSG: got %+v", m)
	}
}

func TestOctetCounting(t *testing.T) {
	e := testEncoder(jsonFormatter)
	batch := []pipeline.Alert{testAlert(), testAlert(), testAlert()}
	batch[1].Message = "zwei\nZeilen — ü"
	batch[2].Device = `odd " device ]`
	var b []byte
	for i := range batch {
		b = e.appendFrame(b, &batch[i])
	}
	frames, rest, err := splitOctetCounted(b)
	if err != nil || len(rest) != 0 || len(frames) != 3 {
		t.Fatalf("split: %d frames, rest %q, %v", len(frames), rest, err)
	}
	for i, f := range frames {
		m := mustParse(t, f)
		want := batch[i].AppendJSON(nil)
		if !bytes.Equal(m.Msg, want) {
			t.Errorf("frame %d: MSG %s; want %s", i, m.Msg, want)
		}
	}
	// LEN counts octets, not characters.
	e = testEncoder(rawMessage)
	a := testAlert()
	a.Message = "ü"
	one := e.appendMessage(nil, &a)
	frame := e.appendFrame(nil, &a)
	if want := strconv.Itoa(len(one)) + " " + string(one); string(frame) != want {
		t.Errorf("frame %q; want %q", frame, want)
	}
}

func TestNonTransparent(t *testing.T) {
	e := testEncoder(rawMessage)
	e.framing = FramingNonTransparent
	a := testAlert()
	a.Message = "line one\nline two\n"
	a.Device = "dev\nice"
	f := e.appendFrame(nil, &a)
	if bytes.IndexByte(f, '\n') != len(f)-1 {
		t.Fatalf("frame %q: want one LF, at the end", f)
	}
	m := mustParse(t, f[:len(f)-1])
	if string(m.Msg) != "line one line two " {
		t.Errorf("MSG %q", m.Msg)
	}
	if d, _ := m.param(DefaultSDID, "device"); d != "dev ice" {
		t.Errorf("device %q", d)
	}
	e.framing = "" // datagrams: no framing, line feeds kept
	if f := e.appendFrame(nil, &a); !bytes.HasSuffix(f, []byte(" line one\nline two\n")) {
		t.Errorf("datagram: %q", f)
	}
}

func TestTruncation(t *testing.T) {
	e := testEncoder(rawMessage)
	e.max = 480
	a := testAlert()
	a.Message = strings.Repeat("€", 400) // 3 octets each
	b := e.appendMessage(nil, &a)
	if len(b) > 480 || len(b) < 478 {
		t.Errorf("length %d; want 478 to 480", len(b))
	}
	m := mustParse(t, b)
	if !m.BOM || !utf8.Valid(m.Msg) || !strings.HasPrefix(a.Message, string(m.Msg)) {
		t.Errorf("MSG %q is not a UTF-8 prefix of the message", m.Msg)
	}
	if e.truncated != 1 {
		t.Errorf("truncated = %d; want 1", e.truncated)
	}
	// A message that fits exactly is not truncated.
	a.Message = ""
	head := len(e.appendMessage(nil, &a))
	a.Message = strings.Repeat("x", 480-head-1)
	if b := e.appendMessage(nil, &a); len(b) != 480 || e.truncated != 1 {
		t.Errorf("exact fit: length %d, truncated %d", len(b), e.truncated)
	}
	// Structured data that alone does not fit is dropped.
	a.Device = strings.Repeat("d", 1000)
	m = mustParse(t, e.appendMessage(nil, &a))
	if m.SD != nil || e.truncated != 2 || len(m.Msg) == 0 {
		t.Errorf("oversized SD: %+v, truncated %d", m, e.truncated)
	}
	// Cuts back to a rune start, at most three octets.
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"a€", 2, "a"}, {"a€", 3, "a"}, {"a€", 4, "a€"}, {"𝄞x", 3, ""}, {"𝄞x", 4, "𝄞"},
		{"\x80\x80\x80\x80\x80", 4, "\x80"}, {"abc", 0, ""},
	} {
		if got := string(cutUTF8([]byte(tc.in), tc.n)); got != tc.want {
			t.Errorf("cutUTF8(%q, %d) = %q; want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestEncodeAllocs(t *testing.T) {
	e := testEncoder(jsonFormatter)
	batch := []pipeline.Alert{testAlert(), testAlert()}
	batch[1].Device = `needs "escaping"`
	var b []byte
	encode := func() {
		b = b[:0]
		for i := range batch {
			b = e.appendFrame(b, &batch[i])
		}
	}
	encode()
	if n := testing.AllocsPerRun(100, encode); n != 0 {
		t.Errorf("%v allocations per batch; want 0", n)
	}
}

func BenchmarkAppendFrame(b *testing.B) {
	e := testEncoder(jsonFormatter)
	a := testAlert()
	buf := e.appendFrame(nil, &a)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = e.appendFrame(buf[:0], &a)
	}
}
