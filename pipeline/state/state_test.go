package state

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, path string, recs []Record) {
	t.Helper()
	w, err := Create(path, Header{Sequence: 7, Created: time.Unix(1_800_000_000, 5)})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.Add(r.Kind, r.Key, r.Value); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

var sample = []Record{
	{KindPosition, "", []byte{1, 2, 3}},
	{KindFleet, "", nil},
	{KindDevice, "sensor-node-01", bytes.Repeat([]byte{0xab}, 300)},
	{KindDevice, "pump \"7\"\n", []byte("x")},
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vigil.state")
	write(t, path, sample)
	h, recs, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != Version || h.Sequence != 7 || h.Created.UnixNano() != 1_800_000_000_000_000_005 {
		t.Errorf("got header %+v", h)
	}
	if len(recs) != len(sample) {
		t.Fatalf("got %d records; want %d", len(recs), len(sample))
	}
	for i := range recs {
		if recs[i].Kind != sample[i].Kind || recs[i].Key != sample[i].Key || !bytes.Equal(recs[i].Value, sample[i].Value) {
			t.Errorf("record %d: got %+v; want %+v", i, recs[i], sample[i])
		}
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

// TestDamageIsRefused: every truncation and every flipped byte is refused
// with ErrCorrupt (or, in the header, as not a snapshot / another version),
// never read as different state.
func TestDamageIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vigil.state")
	write(t, path, sample)
	data, _ := os.ReadFile(path)
	for n := range len(data) {
		if _, _, err := ReadFrom(bytes.NewReader(data[:n]), nil); err == nil {
			t.Fatalf("truncated to %d of %d bytes: read without error", n, len(data))
		}
	}
	for i := range data {
		bad := bytes.Clone(data)
		bad[i] ^= 0x10
		if _, _, err := ReadFrom(bytes.NewReader(bad), nil); err == nil {
			t.Fatalf("byte %d flipped: read without error", i)
		}
	}
	if _, _, err := ReadFrom(bytes.NewReader(data[:len(data)-1]), nil); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("truncated file: got %v; want a corrupt/truncated error", err)
	}
	newer := bytes.Clone(data)
	newer[8] = Version + 1
	if _, _, err := ReadFrom(bytes.NewReader(newer), nil); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("newer version: got %v", err)
	}
	if _, _, err := ReadFrom(strings.NewReader(strings.Repeat("{}", 40)), nil); err == nil || !strings.Contains(err.Error(), "not a Vigil snapshot") {
		t.Errorf("another file: got %v", err)
	}
}

func TestFailedCommitKeepsThePrevious(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vigil.state")
	write(t, path, sample[:1])
	w, err := Create(path, Header{Sequence: 8})
	if err != nil {
		t.Fatal(err)
	}
	w.Add(KindDevice, "x", []byte("y"))
	w.Abort()
	_, recs, err := Read(path)
	if err != nil || len(recs) != 1 {
		t.Errorf("after an aborted snapshot: got %d records, %v; want the previous snapshot", len(recs), err)
	}
}

func FuzzRead(f *testing.F) {
	path := filepath.Join(f.TempDir(), "seed.state")
	w, _ := Create(path, Header{Sequence: 1})
	for _, r := range sample {
		w.Add(r.Kind, r.Key, r.Value)
	}
	w.Commit()
	data, _ := os.ReadFile(path)
	f.Add(data)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, recs, err := ReadFrom(bytes.NewReader(b), nil)
		if err == nil && len(b) < headerSize+trailerSize {
			t.Fatalf("read %d records from %d bytes", len(recs), len(b))
		}
	})
}

// TestNewWriter: a snapshot written to a buffer, plain or encrypted, reads
// back with its records; a flipped byte is corruption.
func TestNewWriter(t *testing.T) {
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ParseKeys(map[string][]byte{"k": []byte(key)}, []string{"k"})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*Keys{nil, keys} {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, Header{Sequence: 7, Created: time.Unix(1, 0)}, k)
		if err != nil {
			t.Fatal(err)
		}
		big := bytes.Repeat([]byte("x"), 300<<10)
		if err := errors.Join(w.Add(KindPosition, "", []byte{1}), w.Add(KindDevice, "dev-1", big), w.Commit()); err != nil {
			t.Fatal(err)
		}
		h, recs, err := ReadFrom(bytes.NewReader(buf.Bytes()), keys)
		if err != nil {
			t.Fatalf("encrypted=%v: %v", k != nil, err)
		}
		if h.Sequence != 7 || len(recs) != 2 || recs[1].Key != "dev-1" || !bytes.Equal(recs[1].Value, big) {
			t.Fatalf("encrypted=%v: header %+v, %d records", k != nil, h, len(recs))
		}
		if k != nil && bytes.Contains(buf.Bytes(), []byte("dev-1")) {
			t.Error("the encrypted snapshot shows a device name in clear")
		}
		b := buf.Bytes()
		b[len(b)/2] ^= 1
		if _, _, err := ReadFrom(bytes.NewReader(b), keys); err == nil {
			t.Errorf("encrypted=%v: a flipped byte was not noticed", k != nil)
		}
	}
}
