package output

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/journal"
)

// Batching bounds a batch handed to an output's Write. Zero fields take
// their defaults.
type Batching struct {
	// Count is the most alerts in one Write (default 100).
	Count int `yaml:"count"`
	// Bytes is about the most journal bytes of alerts in one Write (default
	// 1 MiB; one alert always goes).
	Bytes int `yaml:"bytes"`
	// Period is how long to wait for a batch to fill once an alert is
	// there (default 0: send what is there at once).
	Period time.Duration `yaml:"period"`
}

// Retry is the capped exponential backoff between attempts: before retry n
// (from 1) the runner waits a random time in [d/2, d] where
// d = min(Max, Initial·2^(n-1)), or what the destination asked for
// (RetryAfter), whichever is longer.
type Retry struct {
	Initial time.Duration `yaml:"initial"` // default 100ms
	Max     time.Duration `yaml:"max"`     // default 30s
	// MaxAttempts, when positive, gives up on a batch after that many
	// failed attempts and sends it to the dead letters. The default (0)
	// retries until the destination takes it: the journal holds it.
	MaxAttempts int `yaml:"max_attempts"`
}

// Validate checks the settings; errors name the key.
func (b *Batching) Validate() error {
	if b.Count < 0 || b.Bytes < 0 || b.Period < 0 {
		return errors.New("batch: count, bytes and period must not be negative")
	}
	return nil
}

// Validate checks the settings; errors name the key.
func (r *Retry) Validate() error {
	if r.Initial < 0 || r.Max < 0 || r.MaxAttempts < 0 {
		return errors.New("retry: initial, max and max_attempts must not be negative")
	}
	if r.Max > 0 && r.Initial > r.Max {
		return errors.New("retry: initial must not exceed max")
	}
	return nil
}

// retryAfter carries the delay a destination asked for.
type retryAfter struct {
	err error
	d   time.Duration
}

func (r *retryAfter) Error() string { return r.err.Error() }
func (r *retryAfter) Unwrap() error { return r.err }

// RetryAfter reports the delay the destination asked for.
func (r *retryAfter) RetryAfter() time.Duration { return r.d }

// delayer is implemented by errors that carry the delay a destination asked
// for (RetryAfter here, httpout.RetryAfterError).
type delayer interface{ RetryAfter() time.Duration }

// RetryAfter marks a retryable err with the delay the destination asked
// for (an HTTP Retry-After); the runner waits at least that long.
func RetryAfter(err error, d time.Duration) error {
	if err == nil {
		return nil
	}
	return &retryAfter{err, d}
}

// DeadLetters receives the alerts a destination refused for good.
type DeadLetters interface {
	// Put stores a with the output's name and the reason. It is called
	// from the runners' goroutines and must be safe for concurrent use.
	Put(output string, a *pipeline.Alert, reason error) error
}

// Spec is one output to run.
type Spec struct {
	Name   string // unique; names the journal cursor and the metrics
	Output Output
	Batch  Batching
	Retry  Retry
}

// Status is an output's health, for /readyz and logs.
type Status struct {
	Name       string
	Connected  bool
	Lag        uint64        // alerts in the journal not yet delivered
	LagTime    time.Duration // age of the oldest alert being delivered
	LastError  string        // the last failure, "" after a success
	FailingFor time.Duration // since the first failure of the current run of failures
}

// cursorReader is what a runner needs of its *journal.Reader.
type cursorReader interface {
	Next(ctx context.Context, dst []journal.Entry, count, maxBytes int, linger time.Duration) ([]journal.Entry, error)
	Commit(next uint64) error
	Lag() uint64
	Close() error
}

// runner delivers one output's alerts from its journal cursor.
type runner struct {
	spec Spec
	rd   cursorReader
	dl   DeadLetters
	log  *slog.Logger

	connected atomic.Bool
	oldest    atomic.Int64 // append time of the oldest alert in flight; 0 when idle

	mu        sync.Mutex
	lastErr   error
	failSince time.Time

	sent, retried, failed, dead *metrics.Counter
	writeSecs                   *metrics.Histogram
}

func newRunner(s Spec, rd cursorReader, dl DeadLetters, log *slog.Logger, ms *metrics.Set) *runner {
	if s.Batch.Count <= 0 {
		s.Batch.Count = 100
	}
	if s.Batch.Bytes <= 0 {
		s.Batch.Bytes = 1 << 20
	}
	if s.Retry.Initial <= 0 {
		s.Retry.Initial = 100 * time.Millisecond
	}
	if s.Retry.Max <= 0 {
		s.Retry.Max = 30 * time.Second
	}
	r := &runner{spec: s, rd: rd, dl: dl, log: log.With("output", s.Name)}
	label := fmt.Sprintf(`{output=%q}`, s.Name)
	r.sent = ms.GetOrCreateCounter(`vigil_output_sent_total` + label)
	r.retried = ms.GetOrCreateCounter(`vigil_output_retries_total` + label)
	r.failed = ms.GetOrCreateCounter(`vigil_output_failures_total` + label)
	r.dead = ms.GetOrCreateCounter(`vigil_output_dead_letters_total` + label)
	r.writeSecs = ms.GetOrCreateHistogram(`vigil_output_write_seconds` + label)
	ms.GetOrCreateGauge(`vigil_output_lag_alerts`+label, func() float64 { return float64(rd.Lag()) })
	ms.GetOrCreateGauge(`vigil_output_lag_seconds`+label, func() float64 { return r.lagTime().Seconds() })
	ms.GetOrCreateGauge(`vigil_output_connected`+label, func() float64 {
		if r.connected.Load() {
			return 1
		}
		return 0
	})
	return r
}

func (r *runner) lagTime() time.Duration {
	t := r.oldest.Load()
	if t == 0 {
		return 0
	}
	return time.Since(time.Unix(0, t))
}

func (r *runner) status() Status {
	st := Status{Name: r.spec.Name, Connected: r.connected.Load(), Lag: r.rd.Lag(), LagTime: r.lagTime()}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastErr != nil {
		st.LastError = r.lastErr.Error()
		st.FailingFor = time.Since(r.failSince)
	}
	return st
}

// run delivers until ctx is done or the journal closes. What is in flight
// then stays in the journal (the cursor is not advanced) for the next run.
// Any other error reading the journal is a failure like a destination's:
// recorded in the status and metrics, backed off and retried, so an output
// never stops delivering without a sign.
func (r *runner) run(ctx context.Context) {
	var entries []journal.Entry
	var batch []pipeline.Alert
	readFailures := 0
	for {
		var err error
		entries, err = r.rd.Next(ctx, entries[:0], r.spec.Batch.Count, r.spec.Batch.Bytes, r.spec.Batch.Period)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, journal.ErrClosed) {
				return
			}
			readFailures++
			err = fmt.Errorf("read the journal: %w", err)
			r.failure(err)
			if !sleep(ctx, r.backoff(readFailures, err)) {
				return
			}
			continue
		}
		if readFailures > 0 {
			readFailures = 0
			r.succeeded()
		}
		if len(entries) == 0 {
			continue
		}
		r.oldest.Store(entries[0].Appended)
		batch = batch[:0]
		for i := range entries {
			batch = append(batch, entries[i].Alert)
		}
		if !r.deliver(ctx, batch) {
			return
		}
		r.oldest.Store(0)
		if err := r.rd.Commit(entries[len(entries)-1].Offset + 1); err != nil {
			r.log.Error("saving the output's journal cursor (alerts may be sent again after a restart)", "err", err)
		}
		clear(batch)
	}
}

// deliver writes batch until the destination has taken or refused every
// alert. It returns false when ctx ended first.
func (r *runner) deliver(ctx context.Context, batch []pipeline.Alert) bool {
	pending := batch
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			r.retried.Add(len(pending))
		}
		err := r.attempt(ctx, pending)
		if err == nil {
			r.sent.Add(len(pending))
			r.succeeded()
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		var be *BatchError
		switch {
		case errors.As(err, &be):
			var retry []pipeline.Alert
			items := be.sorted(len(pending))
			failed := make(map[int]bool, len(items))
			for _, it := range items {
				failed[it.Index] = true
				if IsPermanent(it.Err) {
					r.deadLetter(&pending[it.Index], it.Err)
				} else {
					retry = append(retry, pending[it.Index])
				}
			}
			r.sent.Add(len(pending) - len(items))
			if len(retry) == 0 {
				r.succeeded()
				return true
			}
			pending = retry
			err = items[0].Err
		case IsPermanent(err):
			for i := range pending {
				r.deadLetter(&pending[i], err)
			}
			r.succeeded()
			return true
		}
		r.failure(err)
		if m := r.spec.Retry.MaxAttempts; m > 0 && attempt+1 >= m {
			reason := fmt.Errorf("gave up after %d attempts: %w", m, err)
			for i := range pending {
				r.deadLetter(&pending[i], reason)
			}
			return true
		}
		if !sleep(ctx, r.backoff(attempt+1, err)) {
			return false
		}
	}
}

// attempt connects if needed and writes once.
func (r *runner) attempt(ctx context.Context, batch []pipeline.Alert) error {
	if !r.connected.Load() {
		if err := r.spec.Output.Connect(ctx); err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		r.connected.Store(true)
		r.log.Info("output connected")
	}
	start := time.Now()
	err := r.spec.Output.Write(ctx, batch)
	r.writeSecs.UpdateDuration(start)
	var be *BatchError
	if err != nil && !IsPermanent(err) && !errors.As(err, &be) {
		r.connected.Store(false) // reconnect before the next attempt
	}
	return err
}

func (r *runner) backoff(n int, err error) time.Duration {
	d := r.spec.Retry.Max
	if n < 32 {
		d = min(r.spec.Retry.Max, r.spec.Retry.Initial<<(n-1))
	}
	d = d/2 + rand.N(d/2+1)
	var ra delayer
	if errors.As(err, &ra) && ra.RetryAfter() > d {
		d = ra.RetryAfter()
	}
	return d
}

// failure records a failed attempt; state changes are logged once.
func (r *runner) failure(err error) {
	r.failed.Inc()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastErr == nil {
		r.failSince = time.Now()
		r.log.Warn("output failing; alerts wait in the journal and are retried", "err", err)
	} else if r.lastErr.Error() != err.Error() {
		r.log.Warn("output still failing", "err", err, "for", time.Since(r.failSince).Round(time.Second))
	}
	r.lastErr = err
}

func (r *runner) succeeded() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastErr != nil {
		r.log.Info("output recovered", "after", time.Since(r.failSince).Round(time.Millisecond))
		r.lastErr = nil
	}
}

func (r *runner) deadLetter(a *pipeline.Alert, reason error) {
	r.dead.Inc()
	r.log.Error("output refused an alert for good; it goes to the dead letters", "alert", a.ID, "device", a.Device, "kind", a.Kind, "err", reason)
	if r.dl == nil {
		return
	}
	if err := r.dl.Put(r.spec.Name, a, reason); err != nil {
		r.log.Error("writing a dead letter failed; the alert is only in this log", "alert", a.ID, "event", a.EventID(), "err", err)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
