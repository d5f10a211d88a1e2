package file

import (
	"context"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vigil-iot/vigil/pipeline"
)

func TestCSV(t *testing.T) {
	tests := []struct {
		name string
		file string // the name given to NewReader; default "plant/art_flatline.csv"
		in   string
		opt  Options
		want []rec // Origin is filled in from file
	}{
		{
			name: "no device column: device from the file name",
			in:   "timestamp,value\n2014-04-01 00:00:00,45.0\n2014-04-01 00:05:00,20.0\n",
			want: []rec{
				{Payload: `{"timestamp":"2014-04-01 00:00:00","node_id":"art_flatline","data":{"value":45.0}}`, Line: 2},
				{Payload: `{"timestamp":"2014-04-01 00:05:00","node_id":"art_flatline","data":{"value":20.0}}`, Line: 3},
			},
		},
		{
			name: "gzip name",
			file: "/var/log/x.csv.gz",
			in:   "timestamp,value\n1,2\n",
			want: []rec{{Payload: `{"timestamp":1,"node_id":"x","data":{"value":2}}`, Line: 2}},
		},
		{
			name: "stdin",
			file: "-",
			opt:  Options{Format: CSV},
			in:   "timestamp,value\n1,2\n",
			want: []rec{{Payload: `{"timestamp":1,"node_id":"stdin","data":{"value":2}}`, Line: 2}},
		},
		{
			name: "semicolons, detected from the header (SKAB's layout)",
			opt:  Options{CSV: CSVMapping{Time: "datetime", Label: "anomaly"}},
			in:   "datetime;Pressure;Volume Flow RateRMS;anomaly\n2020-03-09 10:14:33;0.054711;32.0;0.0\n2020-03-09 10:14:34;\"0,38\";32.0;1.0\n",
			want: []rec{
				{Payload: `{"timestamp":"2020-03-09 10:14:33","node_id":"art_flatline","data":{"Pressure":0.054711,"Volume Flow RateRMS":32.0},"label":0.0}`, Line: 2},
				// A decimal comma is not a number: the decoder rejects it with a reason.
				{Payload: `{"timestamp":"2020-03-09 10:14:34","node_id":"art_flatline","data":{"Pressure":"0,38","Volume Flow RateRMS":32.0},"label":1.0}`, Line: 3},
			},
		},
		{
			name: "tabs, detected from the header",
			in:   "timestamp\tvalue\n1\t2\n",
			want: []rec{{Payload: `{"timestamp":1,"node_id":"art_flatline","data":{"value":2}}`, Line: 2}},
		},
		{
			name: "a comma header wins over semicolons in quoted cells",
			in:   "timestamp,note\n1,\"a;b\"\n",
			want: []rec{{Payload: `{"timestamp":1,"node_id":"art_flatline","data":{"note":"a;b"}}`, Line: 2}},
		},
		{
			name: "a separator given is used as given",
			opt:  Options{CSV: CSVMapping{Comma: '|'}},
			in:   "timestamp|value\n1|2\n",
			want: []rec{{Payload: `{"timestamp":1,"node_id":"art_flatline","data":{"value":2}}`, Line: 2}},
		},
		{
			name: "device column",
			in:   "timestamp,node_id,p,t\n1700000000,press-1,4.5,60\n1700000001,press-2,-4.25e1,0\n",
			want: []rec{
				{Payload: `{"timestamp":1700000000,"node_id":"press-1","data":{"p":4.5,"t":60}}`, Line: 2},
				{Payload: `{"timestamp":1700000001,"node_id":"press-2","data":{"p":-4.25e1,"t":0}}`, Line: 3},
			},
		},
		{
			name: "status and label columns",
			in:   "label,timestamp,status,node_id,p\n1,2026-11-21T10:00:00Z,0,p1,4.5\n0,2026-11-21T10:00:01Z,2,p1,4.6\n",
			want: []rec{
				{Payload: `{"timestamp":"2026-11-21T10:00:00Z","node_id":"p1","status":0,"data":{"p":4.5},"label":1}`, Line: 2},
				{Payload: `{"timestamp":"2026-11-21T10:00:01Z","node_id":"p1","status":2,"data":{"p":4.6},"label":0}`, Line: 3},
			},
		},
		{
			name: "empty cells are left out",
			in:   "timestamp,node_id,status,p,t,label\n1,p1,,,5,\n,,,,,\n2, ,1, , ,\n",
			want: []rec{
				{Payload: `{"timestamp":1,"node_id":"p1","data":{"t":5}}`, Line: 2},
				{Payload: `{"data":{}}`, Line: 3},
				{Payload: `{"timestamp":2,"status":1,"data":{}}`, Line: 4},
			},
		},
		{
			name: "non-numeric cells become strings for the decoder to reject",
			in:   "timestamp,status,p,t,label\nyesterday,ok,high,NaN,anomaly\n",
			want: []rec{
				{Payload: `{"timestamp":"yesterday","node_id":"art_flatline","status":"ok","data":{"p":"high","t":"NaN"},"label":"anomaly"}`, Line: 2},
			},
		},
		{
			name: "epochs lose leading zeros",
			in:   "timestamp,p\n00,1\n0017,2\n",
			want: []rec{
				{Payload: `{"timestamp":0,"node_id":"art_flatline","data":{"p":1}}`, Line: 2},
				{Payload: `{"timestamp":17,"node_id":"art_flatline","data":{"p":2}}`, Line: 3},
			},
		},
		{
			name: "numbers",
			in:   "timestamp,a,b,c,d,e,f,g,h,i,j\n1700000000.5,.5,+1,1.,007,-0.0,1E-3,Inf,-,1e999,0x10\n",
			want: []rec{
				{Payload: `{"timestamp":"1700000000.5","node_id":"art_flatline","data":{"a":0.5,"b":1,"c":1,"d":7,"e":-0.0,"f":1E-3,"g":"Inf","h":"-","i":1e999,"j":"0x10"}}`, Line: 2},
			},
		},
		{
			name: "strings are escaped",
			in:   "timestamp,node_id,\"we\"\"ird\\key\"\n\"2026-01-01 00:00:00\",\"a\"\"b\nc\",\"tab\there\x01\xff\"\n",
			want: []rec{
				{Payload: `{"timestamp":"2026-01-01 00:00:00","node_id":"a\"b\nc","data":{"we\"ird\\key":"tab\there\u0001\ufffd"}}`, Line: 2},
			},
		},
		{
			name: "a quoted record over several lines is numbered by its first",
			in:   "timestamp,node_id,p\n1,\"p\n1\",2\n3,p2,4\n",
			want: []rec{
				{Payload: `{"timestamp":1,"node_id":"p\n1","data":{"p":2}}`, Line: 2},
				{Payload: `{"timestamp":3,"node_id":"p2","data":{"p":4}}`, Line: 4},
			},
		},
		{
			name: "malformed records are passed on and reading goes on",
			in:   "timestamp,p\n1,2\n3,4,5\n6\n7,8\n9,a\"b\n10,11\n",
			want: []rec{
				{Payload: `{"timestamp":1,"node_id":"art_flatline","data":{"p":2}}`, Line: 2},
				{Payload: `csv: line 3: wrong number of fields`, Line: 3},
				{Payload: `csv: line 4: wrong number of fields`, Line: 4},
				{Payload: `{"timestamp":7,"node_id":"art_flatline","data":{"p":8}}`, Line: 5},
				{Payload: `csv: line 6, column 4: bare " in non-quoted-field`, Line: 6},
				{Payload: `{"timestamp":10,"node_id":"art_flatline","data":{"p":11}}`, Line: 7},
			},
		},
		{
			name: "header: byte-order mark, case and spaces",
			in:   "\ufeffTimeStamp , Node_ID ,Value \r\n1,p1,2\r\n",
			want: []rec{{Payload: `{"timestamp":1,"node_id":"p1","data":{"Value":2}}`, Line: 2}},
		},
		{
			name: "custom mapping",
			in:   "ts,machine,state,is_anomaly,timestamp\n5,m1,1,true,6\n",
			opt:  Options{CSV: CSVMapping{Time: "ts", Device: "machine", Status: "state", Label: "is_anomaly"}},
			want: []rec{{Payload: `{"timestamp":5,"node_id":"m1","status":1,"data":{"timestamp":6},"label":"true"}`, Line: 2}},
		},
		{
			name: "duplicate columns: the first has the role, the rest are data",
			in:   "timestamp,timestamp,p,p\n1,2,3,4\n",
			want: []rec{{Payload: `{"timestamp":1,"node_id":"art_flatline","data":{"timestamp":2,"p":3,"p":4}}`, Line: 2}},
		},
		{
			name: "blank lines are skipped and counted",
			in:   "timestamp,p\n\n1,2\n\n\n3,4\n\n",
			want: []rec{
				{Payload: `{"timestamp":1,"node_id":"art_flatline","data":{"p":2}}`, Line: 3},
				{Payload: `{"timestamp":3,"node_id":"art_flatline","data":{"p":4}}`, Line: 6},
			},
		},
		{
			name: "missing final newline",
			in:   "timestamp,p\n1,2",
			want: []rec{{Payload: `{"timestamp":1,"node_id":"art_flatline","data":{"p":2}}`, Line: 2}},
		},
		{
			name: "over-long payload is cut to MaxLine+1",
			in:   "timestamp,p\n1,2\n",
			opt:  Options{MaxLine: 20},
			want: []rec{{Payload: `{"timestamp":1,"node_`, Line: 2}},
		},
		{
			name: "header only",
			in:   "timestamp,p\n",
			want: nil,
		},
		{
			name: "empty",
			in:   "",
			want: nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := tc.file
			if file == "" {
				file = "plant/art_flatline.csv"
			}
			for i := range tc.want {
				tc.want[i].Origin = file
			}
			for _, max := range []int{1, 1000} {
				src, err := NewReader(strings.NewReader(tc.in), file, tc.opt)
				if err != nil {
					t.Fatal(err)
				}
				got, err := readAll(t, src, max)
				if err != nil {
					t.Fatalf("max %d: %v", max, err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("max %d:\ngot  %v\nwant %v", max, got, tc.want)
				}
				for _, r := range got {
					if strings.HasPrefix(r.Payload, "{") && len(r.Payload) <= tc.opt.maxLine() && !json.Valid([]byte(r.Payload)) {
						t.Errorf("line %d: payload %s is not valid JSON", r.Line, r.Payload)
					}
				}
			}
		})
	}
}

func TestCSVHeaderErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"no time column", "time,value\n1,2\n", `file: read "x.csv": csv header ["time" "value"] has no time column "timestamp"`},
		{"malformed header", "timestamp,\"p\n", `file: read "x.csv": csv header: parse error on line 1, column 14: extraneous or missing " in quoted-field`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, err := NewReader(strings.NewReader(tc.in), "x.csv", Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			var b pipeline.FrameBatch
			err = src.ReadBatch(context.Background(), &b, 10)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got %v; want %s", err, tc.want)
			}
			if err2 := src.ReadBatch(context.Background(), &b, 10); err2 != err {
				t.Errorf("second ReadBatch: got %v; want the same error", err2)
			}
		})
	}
}

// TestCSVOpen reads CSV files through Open, found by name.
func TestCSVOpen(t *testing.T) {
	const in = "timestamp,value\n2014-04-01 00:00:00,45.0\n"
	const want = `{"timestamp":"2014-04-01 00:00:00","node_id":"art_flatline","data":{"value":45.0}}`
	for _, tc := range []struct {
		file string
		data []byte
	}{
		{"art_flatline.csv", []byte(in)},
		{"art_flatline.CSV", []byte(in)},
		{"art_flatline.csv.gz", gzipped(t, in)},
	} {
		path := writeFile(t, tc.file, tc.data)
		src, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := readAll(t, src, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Payload != want || got[0].Origin != path || got[0].Line != 2 {
			t.Errorf("%s: got %v; want one frame %s from %s line 2", tc.file, got, want, path)
		}
	}
}

// TestNAB reads a NAB series from the shared data sets.
func TestNAB(t *testing.T) {
	const path = "../../../shared/datasets/nab/data/artificialNoAnomaly/art_flatline.csv"
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("NAB data set missing under CI: %v", err)
		}
		t.Skipf("NAB data set not found: %v", err)
	}
	src, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := readAll(t, src, 512)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4032 {
		t.Fatalf("got %d frames; want 4032", len(got))
	}
	want := rec{Payload: `{"timestamp":"2014-04-01 00:00:00","node_id":"art_flatline","data":{"value":45.0}}`, Origin: path, Line: 2}
	if got[0] != want {
		t.Errorf("first frame: got %v; want %v", got[0], want)
	}
	if last := got[len(got)-1]; last.Line != 4033 {
		t.Errorf("last frame: got line %d; want 4033", last.Line)
	}
	for _, r := range got {
		var m struct {
			NodeID string `json:"node_id"`
		}
		if err := json.Unmarshal([]byte(r.Payload), &m); err != nil || m.NodeID != "art_flatline" {
			t.Fatalf("line %d: got node_id %q (%v); want %q", r.Line, m.NodeID, err, "art_flatline")
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{
		"", "plain", `"quoted"`, `back\slash`, "new\nline\r\t", "\x00\x1f\x7f", "ünïcødé ✓ 𝄞",
		"bad \xff utf8 \xe2\x82", "\u2028\u2029", "</script>",
	} {
		got := appendJSONString(nil, s)
		if !json.Valid(got) {
			t.Errorf("appendJSONString(%q) = %s: not valid JSON", s, got)
			continue
		}
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatal(err)
		}
		want := strings.ToValidUTF8(s, "\ufffd")
		if s == "bad \xff utf8 \xe2\x82" {
			want = "bad \ufffd utf8 \ufffd\ufffd" // one per byte, as encoding/json does
		}
		if back != want {
			t.Errorf("appendJSONString(%q) decodes to %q; want %q", s, back, want)
		}
	}
}

func TestIsJSONNumber(t *testing.T) {
	for _, s := range []string{
		"0", "-0", "1", "-1", "10", "1.5", "-0.25", "1e5", "1E+5", "1e-5", "0.0e0", "123456789012345678901234567890",
		"", "-", "+1", ".5", "1.", "01", "00", "1e", "1e+", "--1", "0x10", "1_000", "NaN", "Inf", "1.2.3", "1e5.5",
	} {
		if got, want := isJSONNumber(s), json.Valid([]byte(s)); got != want {
			t.Errorf("isJSONNumber(%q): got %v; want %v", s, got, want)
		}
	}
}

// FuzzCSV checks that whatever the input, reading does not fail or stall, and
// every payload made from a record is valid JSON.
func FuzzCSV(f *testing.F) {
	f.Add("timestamp,node_id,status,p,label\n1,p1,0,4.5,1\n")
	f.Add("timestamp,p\n1,\"a\"\"b\n\"\n2,x\"y\n3\n")
	f.Add("\ufefftimestamp,\xff\n\x00,\"\n")
	f.Fuzz(func(t *testing.T, in string) {
		src, err := NewReader(strings.NewReader(in), "f.csv", Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		var b pipeline.FrameBatch
		for range len(in) + 2 {
			b.Reset()
			err := src.ReadBatch(context.Background(), &b, 3)
			for i := range b.Frames {
				p := b.Payload(&b.Frames[i])
				if len(p) > 0 && p[0] == '{' && !json.Valid(p) {
					t.Fatalf("payload %q is not valid JSON", p)
				}
			}
			if err != nil {
				return // EOF, or a header error
			}
		}
		t.Fatalf("no end after %d calls", len(in)+2)
	})
}

// TestCSVMappingValidate: a mapping names each role once and separates
// fields by a character the CSV reader can use.
func TestCSVMappingValidate(t *testing.T) {
	for _, tc := range []struct {
		m    CSVMapping
		want string // "" valid; else in the error
	}{
		{CSVMapping{}, ""},
		{CSVMapping{Comma: ';'}, ""},
		{CSVMapping{Comma: '\t'}, ""},
		{CSVMapping{Comma: '"'}, "cannot separate fields"},
		{CSVMapping{Comma: '\n'}, "cannot separate fields"},
		{CSVMapping{Comma: utf8.RuneError}, "cannot separate fields"},
		{CSVMapping{Time: "t", Label: "T"}, "mapped as time already"},
	} {
		err := Options{CSV: tc.m}.Validate()
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v; want %q", tc.m, err, tc.want)
		}
	}
}

// TestCSVSeparatorDetection: the separator is the one most frequent outside
// quotes on the first non-blank line among those that split the first
// record alike, so a unit with a comma in a header cell, quoted or not, or
// decimal commas in the records, do not pass for it.
func TestCSVSeparatorDetection(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"quoted header cell with a comma", "timestamp;\"pressure, bar\"\n1;2\n"},
		{"unquoted comma in a tab header", "timestamp\tflow, l/min\n1\t2\n"},
		{"blank first lines", "\n\r\ntimestamp;value\n1;2\n"},
		{"CRLF", "timestamp;value\r\n1;2\r\n"},
		{"byte-order mark", "\ufefftimestamp;value\n1;2\n"},
		{"comma", "timestamp,value\n1,2\n"},
		{"decimal commas in the record", "timestamp;v;value\n1;0,5;2\n"},
		{"a header alone", "timestamp;value\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := NewReader(strings.NewReader(tc.in), "x.csv", Options{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := readAll(t, src, 10)
			if tc.name == "a header alone" {
				if err != nil || len(got) != 0 {
					t.Errorf("got %v, %v; want no records and no error", got, err)
				}
				return
			}
			if err != nil || len(got) != 1 || !strings.Contains(got[0].Payload, `":2}`) {
				t.Errorf("got %v, %v; want one record with the value 2", got, err)
			}
		})
	}
}
