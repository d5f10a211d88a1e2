package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
)

// Encryption at rest uses age (filippo.io/age): X25519 identities, the
// payload encrypted and authenticated in chunks (ChaCha20-Poly1305), so a
// snapshot is streamed to disk without a second copy in memory. An
// encrypted snapshot file is
//
//	"VIGILSNE" | version u16 | flags u16 | sequence u64 | key ID [8] | age file of the plain snapshot
//
// The plain snapshot inside carries the version and the sequence again;
// after decryption they must equal the outer ones, so the outer header is
// bound to the authenticated payload and an edited or swapped header is
// refused. The key ID (the first 8 bytes of SHA-256 of the recipient) names
// the key in errors; it is not secret.

var encMagic = []byte("VIGILSNE")

const encHeaderSize = 8 + 2 + 2 + 8 + 8

// Keys are the identities snapshots are encrypted and decrypted with: new
// snapshots are encrypted for the first; any of them decrypts. To rotate,
// put the new key first and keep the old ones until no snapshot needs them.
type Keys struct {
	ids []*age.X25519Identity
}

// ParseKeys reads one age X25519 identity ("AGE-SECRET-KEY-1…", comments
// and blank lines allowed) from each source. name says where it came from,
// for errors; the key itself never appears in them.
func ParseKeys(sources map[string][]byte, order []string) (*Keys, error) {
	k := &Keys{}
	for _, name := range order {
		id, err := parseIdentity(sources[name])
		if err != nil {
			return nil, fmt.Errorf("state: %s: %w", name, err)
		}
		k.ids = append(k.ids, id)
	}
	if len(k.ids) == 0 {
		return nil, errors.New("state: no encryption key")
	}
	return k, nil
}

func parseIdentity(b []byte) (*age.X25519Identity, error) {
	var found *age.X25519Identity
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if found != nil {
			return nil, errors.New("more than one key; give each key its own file")
		}
		id, err := age.ParseX25519Identity(line)
		if err != nil {
			return nil, errors.New("not an age X25519 identity (AGE-SECRET-KEY-1…; make one with age-keygen)")
		}
		found = id
	}
	if found == nil {
		return nil, errors.New("no key in it")
	}
	return found, nil
}

// GenerateKey returns a new identity in age's text form, for tests and for
// "vigil state keygen".
func GenerateKey() (string, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", err
	}
	return id.String(), nil
}

// KeyID returns the ID of the key new snapshots are encrypted with.
func (k *Keys) KeyID() string { return keyID(k.ids[0].Recipient()) }

func keyID(r *age.X25519Recipient) string {
	sum := sha256.Sum256([]byte(r.String()))
	return hex.EncodeToString(sum[:8])
}

func (k *Keys) identities() []age.Identity {
	ids := make([]age.Identity, len(k.ids))
	for i, id := range k.ids {
		ids[i] = id
	}
	return ids
}

// CreateEncrypted is Create with the snapshot encrypted for keys' first
// key.
func CreateEncrypted(path string, h Header, keys *Keys) (*Writer, error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	enc, err := encryptTo(f, h, keys)
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	return newWriter(path, tmp, f, f, enc, h), nil
}

// encryptTo writes the encrypted snapshot's plain header to dst and
// returns the writer that encrypts the rest into dst for keys' first key.
func encryptTo(dst io.Writer, h Header, keys *Keys) (io.WriteCloser, error) {
	hdr := append([]byte(nil), encMagic...)
	hdr = binary.LittleEndian.AppendUint16(hdr, Version)
	hdr = binary.LittleEndian.AppendUint16(hdr, 0)
	hdr = binary.LittleEndian.AppendUint64(hdr, h.Sequence)
	id, _ := hex.DecodeString(keys.KeyID())
	hdr = append(hdr, id...)
	if _, err := dst.Write(hdr); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	enc, err := age.Encrypt(dst, keys.ids[0].Recipient())
	if err != nil {
		return nil, fmt.Errorf("state: encrypt: %w", err)
	}
	return enc, nil
}

// ReadWith is Read that also opens encrypted snapshots with keys (nil:
// none configured).
func ReadWith(path string, keys *Keys) (Header, []Record, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Header{}, nil, fmt.Errorf("state: %w", err)
	}
	h, recs, err := parseWith(data, keys)
	if err != nil {
		return h, nil, fmt.Errorf("%s: %w", path, err)
	}
	return h, recs, nil
}

func parseWith(data []byte, keys *Keys) (Header, []Record, error) {
	if len(data) < 8 || !bytes.Equal(data[:8], encMagic) {
		h, recs, err := parse(data)
		if err == nil && keys != nil {
			// Not an error: a deployment that turns encryption on starts
			// from its last plain snapshot; the next one is encrypted.
			return h, recs, nil
		}
		return h, recs, err
	}
	var h Header
	if len(data) < encHeaderSize {
		return h, nil, corrupt("encrypted snapshot header cut short (truncated?)")
	}
	h.Version = binary.LittleEndian.Uint16(data[8:])
	if h.Version == 0 || h.Version > Version {
		return h, nil, fmt.Errorf("snapshot format version %d is not supported (this build reads 1 to %d)", h.Version, Version)
	}
	h.Sequence = binary.LittleEndian.Uint64(data[12:])
	id := hex.EncodeToString(data[20:28])
	if keys == nil {
		return h, nil, fmt.Errorf("snapshot is encrypted (key %s); configure state.encryption", id)
	}
	r, err := age.Decrypt(bytes.NewReader(data[encHeaderSize:]), keys.identities()...)
	var nomatch *age.NoIdentityMatchError
	switch {
	case errors.As(err, &nomatch):
		return h, nil, fmt.Errorf("snapshot is encrypted for key %s, which is not among the configured keys (%s)", id, keys.idList())
	case err != nil:
		return h, nil, corrupt("cannot decrypt: %v", err)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		return h, nil, corrupt("decrypting: %v (damaged or truncated)", err)
	}
	inner, recs, err := parse(plain)
	if err != nil {
		return h, nil, err
	}
	if inner.Version != h.Version || inner.Sequence != h.Sequence {
		return h, nil, corrupt("the header says version %d, sequence %d; the encrypted snapshot %d, %d (edited or swapped)", h.Version, h.Sequence, inner.Version, inner.Sequence)
	}
	return inner, recs, nil
}

// idList lists the configured key IDs for errors.
func (k *Keys) idList() string {
	var s []string
	for _, id := range k.ids {
		s = append(s, keyID(id.Recipient()))
	}
	return strings.Join(s, ", ")
}

// PeekSequence reads the sequence from the header of the snapshot at path
// (plain or encrypted) without verifying the rest.
func PeekSequence(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var b [20]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return 0, corrupt("header cut short")
	}
	if !bytes.Equal(b[:8], magic) && !bytes.Equal(b[:8], encMagic) {
		return 0, errors.New("not a Vigil snapshot")
	}
	return binary.LittleEndian.Uint64(b[12:]), nil
}
