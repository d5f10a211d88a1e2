package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Record is a partition's ownership record, the value of key part.<p> in
// the cluster bucket.
type Record struct {
	// Owner is the member key (<worker-id>.<incarnation>) of the owner.
	Owner string `json:"owner,omitempty"`
	// Epoch counts the takeovers of the partition.
	Epoch uint64 `json:"epoch"`
	// Released is set when the owner handed the partition over: the next
	// one need not wait for its lease to expire.
	Released bool `json:"released,omitempty"`
	// Checkpoint is the partition's latest checkpoint.
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	Updated    time.Time   `json:"updated"`
}

// Checkpoint locates a partition's learned state in the object store.
type Checkpoint struct {
	Object string `json:"object"`
	Digest string `json:"digest"` // SHA-256, hex
	Bytes  int64  `json:"bytes"`
	// Mark is the stream sequence of the last message the state covers;
	// a new owner reads the partition from the next one.
	Mark uint64 `json:"mark"`
	// Clock is the partition's stream clock at the checkpoint (Unix ns).
	Clock   int64     `json:"clock"`
	Created time.Time `json:"created"`
	// FleetJudged, on the partition that hosts the fleet judge, is the end
	// of the last fleet window whose alerts had been delivered when the
	// checkpoint was taken: the next judge, rebuilding its state from the
	// fleet stream, does not raise those again.
	FleetJudged int64 `json:"fleet_judged,omitempty"`
}

// ErrFenced is returned by a write of a partition that another member took
// over: the writer must stop the partition without writing anything more.
var ErrFenced = errors.New("cluster: partition fenced: another member took it over")

// OwnedError is returned by Take while the partition's owner holds it.
type OwnedError struct {
	Partition int
	Owner     string
}

func (e *OwnedError) Error() string {
	return fmt.Sprintf("cluster: partition %d is owned by %s", e.Partition, e.Owner)
}

// Records reads and writes the ownership records in a cluster bucket.
type Records struct {
	kv jetstream.KeyValue
}

// NewRecords returns the records of the bucket kv.
func NewRecords(kv jetstream.KeyValue) *Records { return &Records{kv: kv} }

func recordKey(p int) string { return "part." + strconv.Itoa(p) }

// Get returns partition p's record (the zero Record when there is none)
// and its revision (0 then).
func (r *Records) Get(ctx context.Context, p int) (Record, error) {
	rec, _, err := r.get(ctx, p)
	return rec, err
}

func (r *Records) get(ctx context.Context, p int) (Record, uint64, error) {
	var rec Record
	e, err := r.kv.Get(ctx, recordKey(p))
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return rec, 0, nil
	case err != nil:
		return rec, 0, fmt.Errorf("cluster: partition %d: %w", p, err)
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return rec, 0, fmt.Errorf("cluster: partition %d: bad record: %w", p, err)
	}
	return rec, e.Revision(), nil
}

// Ownership is a member's hold on a partition: the record as it wrote it
// and its revision, which every later write must still find.
type Ownership struct {
	p   int
	mu  sync.Mutex
	rec Record
	rev uint64
}

// Partition is the partition owned.
func (o *Ownership) Partition() int { return o.p }

// Epoch is the ownership's epoch.
func (o *Ownership) Epoch() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.rec.Epoch
}

// Take makes m the owner of partition p, if the record has no owner, was
// released, is m's own, or names an owner whose lease is gone; otherwise
// it returns an *OwnedError. It returns the record as it was (its
// checkpoint is where the new owner starts). A concurrent takeover that
// wins the compare-and-swap makes Take return an *OwnedError too.
func (r *Records) Take(ctx context.Context, p int, m *Member) (*Ownership, Record, error) {
	prev, rev, err := r.get(ctx, p)
	if err != nil {
		return nil, prev, err
	}
	if prev.Owner != "" && !prev.Released && prev.Owner != m.Key() {
		alive, err := m.alive(ctx, prev.Owner)
		if err != nil {
			return nil, prev, fmt.Errorf("cluster: partition %d: is %s alive: %w", p, prev.Owner, err)
		}
		if alive {
			return nil, prev, &OwnedError{Partition: p, Owner: prev.Owner}
		}
	}
	next := prev
	next.Owner, next.Epoch, next.Released, next.Updated = m.Key(), prev.Epoch+1, false, time.Now().UTC()
	b, _ := json.Marshal(next)
	var nrev uint64
	if rev == 0 {
		nrev, err = r.kv.Create(ctx, recordKey(p), b)
	} else {
		nrev, err = r.kv.Update(ctx, recordKey(p), b, rev)
	}
	switch {
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		return nil, prev, &OwnedError{Partition: p, Owner: "(another member, concurrently)"}
	case err != nil:
		return nil, prev, fmt.Errorf("cluster: take partition %d: %w", p, err)
	}
	return &Ownership{p: p, rec: next, rev: nrev}, prev, nil
}

// update writes o's record changed by f, if o still owns it.
func (r *Records) update(ctx context.Context, o *Ownership, f func(*Record)) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	next := o.rec
	f(&next)
	next.Updated = time.Now().UTC()
	b, _ := json.Marshal(next)
	nrev, err := r.kv.Update(ctx, recordKey(o.p), b, o.rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		// Either another member took the partition over (a higher
		// epoch), or an earlier write of ours landed although its reply
		// was lost: only this owner writes records of its epoch. Adopt
		// the latter and write again.
		cur, rev, gerr := r.get(ctx, o.p)
		if gerr != nil || rev == 0 || cur.Owner != o.rec.Owner || cur.Epoch != o.rec.Epoch || cur.Released {
			return fmt.Errorf("partition %d: %w", o.p, ErrFenced)
		}
		nrev, err = r.kv.Update(ctx, recordKey(o.p), b, rev)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("partition %d: %w", o.p, ErrFenced)
		}
	}
	switch {
	case err != nil:
		return fmt.Errorf("cluster: partition %d: %w", o.p, err)
	}
	o.rec, o.rev = next, nrev
	return nil
}

// Commit records ck as partition o's latest checkpoint; ErrFenced when
// another member took the partition over.
func (r *Records) Commit(ctx context.Context, o *Ownership, ck Checkpoint) error {
	return r.update(ctx, o, func(rec *Record) { rec.Checkpoint = &ck })
}

// Release hands partition o over: the next owner may take it at once.
func (r *Records) Release(ctx context.Context, o *Ownership) error {
	return r.update(ctx, o, func(rec *Record) { rec.Released = true })
}

// List returns the records of partitions [0, n).
func (r *Records) List(ctx context.Context, n int) ([]Record, error) {
	recs := make([]Record, n)
	for p := range n {
		rec, err := r.Get(ctx, p)
		if err != nil {
			return nil, err
		}
		recs[p] = rec
	}
	return recs, nil
}
