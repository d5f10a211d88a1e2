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

func keys(t *testing.T, texts ...string) *Keys {
	t.Helper()
	src := map[string][]byte{}
	var order []string
	for i, k := range texts {
		name := "key" + string(rune('A'+i))
		src[name] = []byte("# a comment\n" + k + "\n")
		order = append(order, name)
	}
	ks, err := ParseKeys(src, order)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func writeEncrypted(t *testing.T, path string, seq uint64, ks *Keys) {
	t.Helper()
	w, err := CreateEncrypted(path, Header{Sequence: seq, Created: time.Unix(1_800_000_000, 0)}, ks)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range sample {
		w.Add(r.Kind, r.Key, r.Value)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestEncryption(t *testing.T) {
	a, _ := GenerateKey()
	b, _ := GenerateKey()
	dir := t.TempDir()
	path := filepath.Join(dir, "vigil.state")
	writeEncrypted(t, path, 3, keys(t, a))

	data, _ := os.ReadFile(path)
	if bytes.Contains(data, []byte("sensor-node-01")) {
		t.Fatal("the encrypted snapshot holds a device name in clear")
	}
	h, recs, err := ReadWith(path, keys(t, a))
	if err != nil || h.Sequence != 3 || len(recs) != len(sample) || recs[2].Key != "sensor-node-01" || !bytes.Equal(recs[2].Value, sample[2].Value) {
		t.Fatalf("read back: %+v, %d records, %v", h, len(recs), err)
	}

	// Rotation: the new key first, the old one kept for reading.
	if _, _, err := ReadWith(path, keys(t, b, a)); err != nil {
		t.Errorf("with the new key first and the old one listed: %v", err)
	}
	rotated := filepath.Join(dir, "rotated.state")
	writeEncrypted(t, rotated, 4, keys(t, b, a))
	if _, _, err := ReadWith(rotated, keys(t, b)); err != nil {
		t.Errorf("a snapshot written after the rotation, read with the new key alone: %v", err)
	}

	for _, tc := range []struct {
		name string
		data []byte
		keys *Keys
		want string
	}{
		{"wrong key", data, keys(t, b), "is not among the configured keys"},
		{"no key configured", data, nil, "configure state.encryption"},
		{"a flipped byte in the payload", flip(data, len(data)-40), keys(t, a), "snapshot is corrupt"},
		{"truncated", data[:len(data)-100], keys(t, a), "snapshot is corrupt"},
		{"the header's sequence edited", setSeq(data, 99), keys(t, a), "edited or swapped"},
	} {
		_, _, err := ReadFrom(bytes.NewReader(tc.data), tc.keys)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v; want an error about %q", tc.name, err, tc.want)
			continue
		}
		for _, k := range []string{a, b} {
			if strings.Contains(err.Error(), k) || strings.Contains(err.Error(), k[len("AGE-SECRET-KEY-1"):]) {
				t.Errorf("%s: the error shows a key: %v", tc.name, err)
			}
		}
	}
	if _, _, err := ReadFrom(bytes.NewReader(flip(data, len(data)-40)), keys(t, a)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("damage: got %v; want ErrCorrupt", err)
	}

	// A plain snapshot is read with keys configured (encryption turned on
	// later); the next one is encrypted.
	plain := filepath.Join(dir, "plain.state")
	write(t, plain, sample)
	if _, _, err := ReadWith(plain, keys(t, a)); err != nil {
		t.Errorf("a plain snapshot with keys configured: %v", err)
	}
}

func TestParseKeysErrors(t *testing.T) {
	a, _ := GenerateKey()
	for _, tc := range []struct{ text, want string }{
		{"", "no key"},
		{"# only a comment\n", "no key"},
		{"AGE-SECRET-KEY-1NOTAKEY", "not an age X25519 identity"},
		{a + "\n" + a, "more than one key"},
	} {
		_, err := ParseKeys(map[string][]byte{"state.encryption.key_file": []byte(tc.text)}, []string{"state.encryption.key_file"})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "key_file") {
			t.Errorf("%q: got %v; want an error naming the file and %q", tc.text, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), a) {
			t.Errorf("the error shows the key: %v", err)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 1
	return c
}

func setSeq(b []byte, seq byte) []byte {
	c := bytes.Clone(b)
	c[12] = seq
	return c
}
