package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-iot/vigil/internal/natstest"
	vjs "github.com/vigil-iot/vigil/pipeline/jetstream"
)

const testLease = time.Second

// setup starts a nats-server and makes the scale-out's buckets.
func setup(t *testing.T) (members, records jetstream.KeyValue, obs jetstream.ObjectStore) {
	t.Helper()
	js := natstest.JetStream(t, natstest.Start(t).URL())
	ctx := t.Context()
	cfg := vjs.Config{Partitions: 4, Lease: testLease}
	if err := vjs.Setup(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	cfg = cfg.WithDefaults()
	var err error
	if members, err = js.KeyValue(ctx, cfg.MembersBucket); err != nil {
		t.Fatal(err)
	}
	if records, err = js.KeyValue(ctx, cfg.ClusterBucket); err != nil {
		t.Fatal(err)
	}
	if obs, err = js.ObjectStore(ctx, cfg.CheckpointsBucket); err != nil {
		t.Fatal(err)
	}
	return members, records, obs
}

func join(t *testing.T, kv jetstream.KeyValue, id string) *Member {
	t.Helper()
	m, err := Join(t.Context(), kv, id, testLease, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// waitUntil polls cond for up to d and reports how long it took.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// TestMembership: members see each other; one that stops renewing (a
// crash: Close without Leave) is seen gone by the others about a lease
// later, from the server's expiry marker; one that leaves is seen gone at
// once; a worker ID that cannot be a key is refused.
func TestMembership(t *testing.T) {
	kv, _, _ := setup(t)
	a, b := join(t, kv, "w-a"), join(t, kv, "w-b")
	waitUntil(t, 2*time.Second, "a sees b", func() bool { return slices.Equal(a.Live(), []string{"w-a", "w-b"}) })
	if !slices.Equal(b.Live(), []string{"w-a", "w-b"}) {
		t.Fatalf("b sees %v", b.Live())
	}
	if time.Until(a.ValidUntil()) <= 0 {
		t.Error("a fresh member's lease is not valid")
	}
	c := join(t, kv, "w-c")
	waitUntil(t, 2*time.Second, "a sees c", func() bool { return len(a.Live()) == 3 })
	c.Close() // crashed: no more renewals
	took := waitUntil(t, 5*testLease, "c's expiry seen", func() bool { return !a.IsLive(c.Key()) })
	t.Logf("a crashed member was seen gone %s after its last renewal could have been (lease %s)", took.Round(10*time.Millisecond), testLease)
	if took < testLease/3 {
		t.Errorf("c seen gone after %s, before its lease could have expired", took)
	}
	select {
	case <-a.Changed():
	default:
		t.Error("no change signalled")
	}
	if err := b.Leave(t.Context()); err != nil {
		t.Fatal(err)
	}
	took = waitUntil(t, testLease, "b's leave seen", func() bool { return slices.Equal(a.Live(), []string{"w-a"}) })
	if took > testLease/2 {
		t.Errorf("a leave took %s to be seen; want at once", took)
	}
	if _, err := Join(t.Context(), kv, "a.b", testLease, nil); err == nil {
		t.Error("a worker ID with a dot was accepted")
	}
}

// TestLostLease: a member whose key is taken from it (it expired while the
// process was paused) is lost at its next renewal, and its ValidUntil is
// over; a pause longer than the lease leaves ValidUntil in the past even
// before that.
func TestLostLease(t *testing.T) {
	kv, _, _ := setup(t)
	m := join(t, kv, "w-a")
	// What a long pause looks like from the server: the key expired.
	if err := kv.Purge(t.Context(), m.Key()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 2*testLease, "loss noticed", func() bool {
		select {
		case <-m.Lost():
			return true
		default:
			return false
		}
	})
	if !m.ValidUntil().IsZero() {
		t.Errorf("a lost member's lease is valid until %s", m.ValidUntil())
	}
	n := join(t, kv, "w-b")
	n.Close() // renewals stop, as in a SIGSTOP
	time.Sleep(testLease)
	if time.Now().Before(n.ValidUntil()) {
		t.Errorf("a lease not renewed for %s is still valid until %s", testLease, n.ValidUntil())
	}
}

// TestFence: A takes a partition; B cannot while A lives; once A's lease
// expired B takes it with the next epoch, and A's checkpoint commit is
// fenced. A released partition is taken without waiting. Of three members
// racing for a free partition exactly one wins.
func TestFence(t *testing.T) {
	kvm, kvr, _ := setup(t)
	recs := NewRecords(kvr)
	ctx := t.Context()
	a, b := join(t, kvm, "w-a"), join(t, kvm, "w-b")
	oa, prev, err := recs.Take(ctx, 0, a)
	if err != nil || prev.Owner != "" || oa.Epoch() != 1 {
		t.Fatalf("first take: %v, previous %+v, epoch %d", err, prev, oa.Epoch())
	}
	if err := recs.Commit(ctx, oa, Checkpoint{Object: "p0/e1/n1", Mark: 10}); err != nil {
		t.Fatal(err)
	}
	var owned *OwnedError
	if _, _, err := recs.Take(ctx, 0, b); !errors.As(err, &owned) || owned.Owner != a.Key() {
		t.Fatalf("B's take while A lives: %v; want owned by %s", err, a.Key())
	}
	a.Close() // A crashes
	var ob *Ownership
	waitUntil(t, 5*testLease, "B takes over", func() bool {
		ob, prev, err = recs.Take(ctx, 0, b)
		return err == nil
	})
	if ob.Epoch() != 2 || prev.Checkpoint == nil || prev.Checkpoint.Mark != 10 {
		t.Fatalf("takeover: epoch %d, previous record %+v; want epoch 2 and A's checkpoint", ob.Epoch(), prev)
	}
	if err := recs.Commit(ctx, oa, Checkpoint{Object: "p0/e1/n2", Mark: 20}); !errors.Is(err, ErrFenced) {
		t.Fatalf("A's commit after the takeover: %v; want ErrFenced", err)
	}
	if err := recs.Release(ctx, oa); !errors.Is(err, ErrFenced) {
		t.Fatalf("A's release after the takeover: %v; want ErrFenced", err)
	}
	if rec, _ := recs.Get(ctx, 0); rec.Owner != b.Key() || rec.Checkpoint.Mark != 10 {
		t.Fatalf("record after the fenced writes: %+v", rec)
	}

	// A released partition: the next member takes it at once.
	c := join(t, kvm, "w-c")
	if err := recs.Release(ctx, ob); err != nil {
		t.Fatal(err)
	}
	if oc, _, err := recs.Take(ctx, 0, c); err != nil || oc.Epoch() != 3 {
		t.Fatalf("take of a released partition: %v", err)
	}

	// A write of c's that landed although its reply was lost (here: made
	// behind the ownership's back, with c's owner and epoch) is adopted,
	// not taken for a takeover.
	oc2, _, err := recs.Take(ctx, 2, c)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kvr.Get(ctx, recordKey(2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kvr.Update(ctx, recordKey(2), e.Value(), e.Revision()); err != nil {
		t.Fatal(err)
	}
	if err := recs.Commit(ctx, oc2, Checkpoint{Object: "p2/e1/n1", Mark: 5}); err != nil {
		t.Errorf("commit after an own write whose reply was lost: %v; want it adopted", err)
	}

	// Three members race for partition 1.
	ms := []*Member{b, c, join(t, kvm, "w-d")}
	var wg sync.WaitGroup
	wins := make([]bool, len(ms))
	for i, m := range ms {
		wg.Go(func() {
			_, _, err := recs.Take(ctx, 1, m)
			wins[i] = err == nil
		})
	}
	wg.Wait()
	n := 0
	for _, w := range wins {
		if w {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d members won the race for a free partition; want 1", n)
	}
}

// TestCheckpoints: a few megabytes round-trip with their digest; a wrong
// digest is refused; a deleted checkpoint is gone and deleting it again
// is not an error.
func TestCheckpoints(t *testing.T) {
	_, _, obs := setup(t)
	cs := NewCheckpoints(obs)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	data := make([]byte, 3<<20+17)
	rand.Read(data)
	digest, size, err := cs.Put(ctx, "p3/e1/n1", bytes.NewReader(data))
	if err != nil || size != int64(len(data)) {
		t.Fatalf("put: %v, %d bytes", err, size)
	}
	got, err := cs.Get(ctx, "p3/e1/n1", digest)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %v, %d bytes back of %d", err, len(got), len(data))
	}
	other, _, _ := cs.Put(ctx, "p3/e1/n2", bytes.NewReader([]byte("other")))
	if _, err := cs.Get(ctx, "p3/e1/n1", other); !errors.Is(err, ErrDigest) {
		t.Errorf("get with another object's digest: %v; want ErrDigest", err)
	}
	if err := cs.Delete(ctx, "p3/e1/n1"); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Get(ctx, "p3/e1/n1", digest); err == nil {
		t.Error("a deleted checkpoint was read")
	}
	if err := cs.Delete(ctx, "p3/e1/n1"); err != nil {
		t.Errorf("deleting again: %v", err)
	}
}
