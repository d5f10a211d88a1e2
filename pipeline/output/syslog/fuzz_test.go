package syslog

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vigil-iot/vigil/pipeline"
)

// valid returns s as the encoder puts it in a PARAM-VALUE, computed
// independently: each octet of invalid UTF-8 becomes U+FFFD.
func valid(s string) string { return string([]rune(s)) }

// FuzzEncode checks that any alert yields frames the strict parser
// accepts, with the structured data values intact (up to the replacement
// of invalid UTF-8) and MSG intact or truncated at a UTF-8 boundary.
func FuzzEncode(f *testing.F) {
	f.Add("ep-1", "pump-7", "overpressure", "overpressure.spike", "pressure", "pressure 9.5 bar", int64(1773480413589793238), uint8(2), uint8(1), false)
	f.Add(`"\]`, `a"b\c]d`, "ké nd", "", "\xff\xfe", "zwei\nZeilen\r\x00", int64(0), uint8(0), uint8(2), true)
	f.Add("", "", "", "", "", bom+"\xff", int64(-1), uint8(1), uint8(0), false)
	f.Add(strings.Repeat("]", 300), strings.Repeat(`\`, 300), strings.Repeat("€", 50), "d", "s", strings.Repeat("ü", 400), int64(1), uint8(2), uint8(1), true)
	f.Fuzz(func(t *testing.T, id, device, kind, detector, signal, msg string, ts int64, sev, state uint8, small bool) {
		a := pipeline.Alert{
			ID: id, Time: ts, Device: device, Kind: kind, Detector: detector, Signal: signal,
			Severity: pipeline.Severity(sev % 3), State: pipeline.AlertState(state % 3), Message: msg,
		}
		e := testEncoder(rawMessage)
		e.max = 1 << 20
		if small {
			e.max = MinMaxMessage
		}
		frames, rest, err := splitOctetCounted(e.appendFrame(nil, &a))
		if err != nil || len(rest) != 0 || len(frames) != 1 {
			t.Fatalf("split: %d frames, rest %q, %v", len(frames), rest, err)
		}
		m, err := parseMessage(frames[0])
		if err != nil {
			t.Fatalf("parse %q: %v", frames[0], err)
		}
		if len(frames[0]) > e.max {
			t.Fatalf("length %d > %d", len(frames[0]), e.max)
		}
		if m.SD != nil {
			for name, want := range map[string]string{
				"id": valid(id), "event": valid(a.EventID()), "device": valid(device), "kind": valid(kind),
				"detector": valid(detector), "signal": valid(signal),
				"severity": a.Severity.String(), "state": a.State.String(),
			} {
				if got, ok := m.param(DefaultSDID, name); !ok || got != want {
					t.Fatalf("%s = %q; want %q", name, got, want)
				}
			}
		} else if e.truncated == 0 {
			t.Fatal("structured data dropped, not counted")
		}
		want := []byte(msg)
		if !utf8.Valid(want) {
			for bytes.HasPrefix(want, []byte(bom)) {
				want = want[len(bom):]
			}
		} else {
			want = bytes.TrimPrefix(want, []byte(bom))
		}
		switch {
		case bytes.Equal(m.Msg, want):
		case e.truncated == 1 && bytes.HasPrefix(want, m.Msg):
			if utf8.Valid(want) && !utf8.Valid(m.Msg) {
				t.Fatalf("truncated MSG %q is not UTF-8", m.Msg)
			}
		default:
			t.Fatalf("MSG %q; want %q", m.Msg, want)
		}
		if m.severity != severity(&a) || m.facility != 16 {
			t.Fatalf("PRI %d", m.PRI)
		}

		// Non-transparent framing: one LF, at the end, and the same message
		// with line feeds as spaces.
		e.framing = FramingNonTransparent
		nt := e.appendFrame(nil, &a)
		if bytes.IndexByte(nt, '\n') != len(nt)-1 {
			t.Fatalf("non-transparent frame %q", nt)
		}
		if !bytes.Equal(nt[:len(nt)-1], bytes.ReplaceAll(frames[0], []byte("\n"), []byte(" "))) {
			t.Fatalf("non-transparent %q; octet-counted %q", nt, frames[0])
		}
	})
}
