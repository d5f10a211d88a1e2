package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"
)

// Checkpoints keeps partition checkpoints in an object store. Objects are
// chunked by the store (128 KiB), so their size is bounded only by the
// bucket.
type Checkpoints struct {
	obs jetstream.ObjectStore
}

// NewCheckpoints returns the checkpoints of the object store obs.
func NewCheckpoints(obs jetstream.ObjectStore) *Checkpoints { return &Checkpoints{obs: obs} }

// Put stores r's bytes as object name (never reuse a name: a reader of
// the previous object must not see it change) and returns their SHA-256
// (hex) and size.
func (c *Checkpoints) Put(ctx context.Context, name string, r io.Reader) (digest string, size int64, err error) {
	h := sha256.New()
	info, err := c.obs.Put(ctx, jetstream.ObjectMeta{Name: name}, io.TeeReader(r, h))
	if err != nil {
		return "", 0, fmt.Errorf("cluster: store checkpoint %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), int64(info.Size), nil
}

// ErrDigest is returned by Get for an object whose bytes do not match the
// digest its record holds.
var ErrDigest = errors.New("cluster: checkpoint does not match its digest")

// Get reads object name and checks it against digest (SHA-256, hex).
func (c *Checkpoints) Get(ctx context.Context, name, digest string) ([]byte, error) {
	b, err := c.obs.GetBytes(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("cluster: read checkpoint %s: %w", name, err)
	}
	sum := sha256.Sum256(b)
	want, err := hex.DecodeString(digest)
	if err != nil || !bytes.Equal(sum[:], want) {
		return nil, fmt.Errorf("%w: %s", ErrDigest, name)
	}
	return b, nil
}

// Delete removes object name; an absent one is not an error.
func (c *Checkpoints) Delete(ctx context.Context, name string) error {
	if err := c.obs.Delete(ctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("cluster: delete checkpoint %s: %w", name, err)
	}
	return nil
}
