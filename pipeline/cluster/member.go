package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

var workerIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Member is this worker's membership: a key <worker-id>.<incarnation> in
// the members bucket whose bucket-wide TTL is the lease. Each renewal is an
// Update on the key's last revision, so the key lives as long as renewals
// succeed, and a renewal after the key expired (or was taken) fails: this
// incarnation is then lost for good. A watch keeps the set of live members.
//
// Clock assumption: ValidUntil is measured on this process's monotonic
// clock from the moment a successful renewal was sent, minus a margin of a
// quarter lease, so it stays on the safe side of the server's expiry as
// long as the two clocks' rates differ by less than that margin over one
// lease (they do by orders of magnitude). A process that was paused keeps
// counting on the monotonic clock, so it wakes up past ValidUntil.
type Member struct {
	kv    jetstream.KeyValue
	id    string
	key   string
	lease time.Duration
	log   *slog.Logger

	mu         sync.Mutex
	live       map[string]string // key -> worker ID
	rev        uint64
	validUntil time.Time

	changed  chan struct{}
	lost     chan struct{}
	lostOnce sync.Once
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// memberValue is what a member's key holds (for `vigil cluster status`).
type memberValue struct {
	Worker      string    `json:"worker"`
	Incarnation string    `json:"incarnation"`
	Started     time.Time `json:"started"`
	Renewed     time.Time `json:"renewed"`
}

// ErrLost is the cause of a member's loss: its key expired or moved.
var ErrLost = errors.New("cluster: membership lost")

// Join makes this process a member of the bucket kv as workerID, with a
// new incarnation, and returns once it has its lease and the current
// members. The membership lasts until Leave, Close, or its loss (Lost).
func Join(ctx context.Context, kv jetstream.KeyValue, workerID string, lease time.Duration, log *slog.Logger) (*Member, error) {
	if !workerIDRE.MatchString(workerID) {
		return nil, fmt.Errorf("cluster: worker ID %q: want 1-64 letters, digits, - or _", workerID)
	}
	if lease < 100*time.Millisecond {
		return nil, fmt.Errorf("cluster: lease %s is too short", lease)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	inc := hex.EncodeToString(rnd[:])
	m := &Member{
		kv: kv, id: workerID, key: workerID + "." + inc, lease: lease, log: log,
		live: map[string]string{}, changed: make(chan struct{}, 1), lost: make(chan struct{}),
	}
	started := time.Now()
	sent := time.Now()
	rev, err := kv.Create(ctx, m.key, m.value(started, sent))
	if err != nil {
		return nil, fmt.Errorf("cluster: join as %s: %w", m.key, err)
	}
	m.rev, m.validUntil = rev, sent.Add(lease-lease/4)
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	w, err := kv.WatchAll(wctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("cluster: watch members: %w", err)
	}
	// The initial values end with a nil entry: after it, Live is complete.
	// A watch that never delivers it (a server busy or failing over) must
	// not hang the join: the caller retries.
	wait := max(10*time.Second, 2*lease)
	limit := time.NewTimer(wait)
	defer limit.Stop()
initial:
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok || e == nil {
				break initial
			}
			m.apply(e)
		case <-limit.C:
			cancel()
			dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), lease)
			_ = kv.Delete(dctx, m.key) // best effort: it would expire with its lease anyway
			dcancel()
			return nil, fmt.Errorf("cluster: join as %s: the members' watch did not list them within %s", m.key, wait)
		case <-ctx.Done():
			cancel()
			return nil, ctx.Err()
		}
	}
	m.live[m.key] = m.id
	m.wg.Go(func() { m.watch(wctx, w) })
	m.wg.Go(func() { m.renew(wctx, started) })
	log.Info("joined the cluster", "member", m.key, "lease", lease, "members", m.Live())
	return m, nil
}

func (m *Member) value(started, renewed time.Time) []byte {
	b, _ := json.Marshal(memberValue{Worker: m.id, Incarnation: m.key[len(m.id)+1:], Started: started.UTC(), Renewed: renewed.UTC()})
	return b
}

// apply records a watched change; it reports whether the live set changed.
func (m *Member) apply(e jetstream.KeyValueEntry) bool {
	key := e.Key()
	id, _, ok := strings.Cut(key, ".")
	if !ok {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, had := m.live[key]
	switch e.Operation() {
	case jetstream.KeyValuePut:
		m.live[key] = id
		return !had
	default: // deleted, purged, or expired (a limit marker)
		delete(m.live, key)
		if key == m.key && m.validUntil != (time.Time{}) {
			// Our own lease is gone: do not wait for the next renewal
			// to find out.
			go m.lose(fmt.Errorf("%w: the watch saw our key %s", ErrLost, e.Operation()))
		}
		return had
	}
}

func (m *Member) watch(ctx context.Context, w jetstream.KeyWatcher) {
	// Stop deletes the watch's consumer with a request of its own, which
	// waits out the client's default timeout (5 s) when the server is
	// unreachable: not on the way of Close.
	defer func() { go w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil || !m.apply(e) {
				continue
			}
			if e.Operation() != jetstream.KeyValuePut {
				m.log.Info("member gone", "member", e.Key(), "op", e.Operation())
			} else {
				m.log.Info("member joined", "member", e.Key())
			}
			select {
			case m.changed <- struct{}{}:
			default:
			}
		}
	}
}

func (m *Member) renew(ctx context.Context, started time.Time) {
	t := time.NewTicker(m.lease / 3)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sent := time.Now()
		m.mu.Lock()
		rev, valid := m.rev, m.validUntil
		m.mu.Unlock()
		if sent.After(valid.Add(m.lease / 4)) {
			// No renewal succeeded for a whole lease: the key has expired
			// on the server, whatever the next attempt would say.
			m.lose(fmt.Errorf("%w: no renewal succeeded for a whole lease (%s)", ErrLost, m.lease))
			return
		}
		rctx, cancel := context.WithTimeout(ctx, m.lease/3)
		nrev, err := m.kv.Update(rctx, m.key, m.value(started, sent), rev)
		cancel()
		switch {
		case err == nil:
			m.mu.Lock()
			m.rev, m.validUntil = nrev, sent.Add(m.lease-m.lease/4)
			m.mu.Unlock()
			if failing {
				m.log.Info("lease renewed again", "member", m.key)
				failing = false
			}
		case errors.Is(err, jetstream.ErrKeyRevisionMismatch), errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
			m.lose(fmt.Errorf("%w: %v", ErrLost, err))
			return
		case ctx.Err() != nil:
			return
		default:
			if !failing {
				m.log.Warn("lease renewal failed; retrying", "member", m.key, "err", err)
				failing = true
			}
		}
	}
}

func (m *Member) lose(err error) {
	m.lostOnce.Do(func() {
		m.log.Error("membership lost: this incarnation must stop acting", "member", m.key, "err", err)
		m.mu.Lock()
		m.validUntil = time.Time{}
		m.mu.Unlock()
		close(m.lost)
	})
}

// Key is this member's key, <worker-id>.<incarnation>.
func (m *Member) Key() string { return m.key }

// ID is this member's worker ID.
func (m *Member) ID() string { return m.id }

// Live returns the worker IDs of the live members, sorted, without
// repeats (a restarted worker's old incarnation may linger until its
// lease expires).
func (m *Member) Live() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make([]string, 0, len(m.live))
	for _, id := range m.live {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// IsLive reports whether the member key is live as far as the watch knows.
func (m *Member) IsLive(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.live[key]
	return ok
}

// alive reports whether the member key still holds its lease, asking the
// server when the watch says no (the watch may lag a takeover's check).
func (m *Member) alive(ctx context.Context, key string) (bool, error) {
	if m.IsLive(key) {
		return true, nil
	}
	_, err := m.kv.Get(ctx, key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		return false, nil
	}
	return false, err
}

// Changed signals (coalesced) that the live set changed.
func (m *Member) Changed() <-chan struct{} { return m.changed }

// Lost is closed when this incarnation's lease is gone: every partition
// must stop at once, writing nothing more; the worker may join again.
func (m *Member) Lost() <-chan struct{} { return m.lost }

// ValidUntil is the time until which this member may act on its lease
// (see the clock assumption above); the zero time once lost.
func (m *Member) ValidUntil() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.validUntil
}

// Leave deletes this member's key (others see it gone at once) and stops.
func (m *Member) Leave(ctx context.Context) error {
	m.Close()
	m.mu.Lock()
	m.validUntil = time.Time{}
	m.mu.Unlock()
	if err := m.kv.Delete(ctx, m.key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("cluster: leave: %w", err)
	}
	return nil
}

// Close stops renewing and watching; the key expires after the lease.
func (m *Member) Close() {
	m.cancel()
	m.wg.Wait()
}
