package jetstream

import (
	"errors"
	"strings"
	"testing"

	"github.com/vigil-iot/vigil/pipeline"
)

func TestEscape(t *testing.T) {
	for _, tc := range []struct{ device, token string }{
		{"pump-7", "pump-7"},
		{"sensor_node_05", "sensor_node_05"},
		{"sensör-é-3", "sensör-é-3"},
		{"line.a", "line%2Ea"},
		{"a*b>c", "a%2Ab%3Ec"},
		{"with space\ttab", "with%20space%09tab"},
		{"100%", "100%25"},
		{"_tick", "%5Ftick"},
		{"a_b", "a_b"},
		{"\x7f", "%7F"},
	} {
		if got := Escape(tc.device); got != tc.token {
			t.Errorf("Escape(%q) = %q; want %q", tc.device, got, tc.token)
		}
		back, err := Unescape(tc.token)
		if err != nil || back != tc.device {
			t.Errorf("Unescape(%q) = %q, %v; want %q", tc.token, back, err, tc.device)
		}
	}
}

// TestEscapeOneToken: every byte value, alone and inside an ID, gives one
// non-reserved token that reverses.
func TestEscapeOneToken(t *testing.T) {
	for c := range 256 {
		for _, id := range []string{string(rune(c)), string([]byte{byte(c)}), "a" + string([]byte{byte(c)}) + "b"} {
			tok := Escape(id)
			if tok == "" || strings.ContainsAny(tok, ".*> \t\r\n") || strings.HasPrefix(tok, "_") {
				t.Fatalf("Escape(%q) = %q: not one non-reserved token", id, tok)
			}
			if back, err := Unescape(tok); err != nil || back != id {
				t.Fatalf("Unescape(Escape(%q)) = %q, %v", id, back, err)
			}
		}
	}
}

func TestUnescapeRejects(t *testing.T) {
	for _, tok := range []string{"_tick", "_unknown", "a.b", "a%2", "a%zz", "a%41", "%2e", "x y"} {
		if d, err := Unescape(tok); !errors.Is(err, ErrBadToken) {
			t.Errorf("Unescape(%q) = %q, %v; want ErrBadToken", tok, d, err)
		}
	}
}

func TestSubjects(t *testing.T) {
	s := Subject("line.a pump", 12)
	p, tok, err := ParseSubject(s)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "line%2Ea%20pump" || p != pipeline.Partition(tok, 12) || p != PartitionOf("line.a pump", 12) {
		t.Errorf("Subject = %q → %d %q; want token line%%2Ea%%20pump in partition %d", s, p, tok, PartitionOf("line.a pump", 12))
	}
	if got := PartitionSubject(3, TickToken); got != "vigil.telemetry.3._tick" {
		t.Errorf("PartitionSubject = %q", got)
	}
	if got := PartitionFilter(11); got != "vigil.telemetry.11.>" {
		t.Errorf("PartitionFilter = %q", got)
	}
	for _, bad := range []string{"vigil.in.x", "vigil.telemetry.x.y", "vigil.telemetry.1", "vigil.telemetry.1.a.b", "vigil.telemetry.-1.a"} {
		if _, _, err := ParseSubject(bad); err == nil {
			t.Errorf("ParseSubject(%q) succeeded", bad)
		}
	}
}
