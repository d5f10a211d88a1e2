package output

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/journal"
)

// Config configures a Fanout.
type Config struct {
	// Journal is the journal's configuration; its Logger and Metrics are
	// taken from here when unset.
	Journal journal.Config
	// Outputs are the destinations; names must be unique.
	Outputs []Spec
	// DeadLetters receives what a destination refuses for good (default:
	// only logged and counted).
	DeadLetters DeadLetters
	// DrainTimeout bounds how long Close lets outputs catch up before it
	// stops them; what they have not delivered stays in the journal for
	// the next start (default 5s).
	DrainTimeout time.Duration
	Logger       *slog.Logger
	Metrics      *metrics.Set
}

// Fanout is the pipeline.Sink of a live run: Write appends each batch to
// the journal, and a runner per output delivers it from there on its own
// goroutine. Write returns as soon as the journal has the alerts, so no
// destination holds up detection or the input's acknowledgements.
type Fanout struct {
	cfg     Config
	log     *slog.Logger
	j       *journal.Journal
	runners []*runner

	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	appendErr error

	appendFailures *metrics.Counter
}

// New opens the journal for the outputs and prepares their runners; Start
// runs them.
func New(cfg Config) (*Fanout, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.NewSet()
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = 5 * time.Second
	}
	if cfg.Journal.Logger == nil {
		cfg.Journal.Logger = cfg.Logger
	}
	if cfg.Journal.Metrics == nil {
		cfg.Journal.Metrics = cfg.Metrics
	}
	var names []string
	for _, s := range cfg.Outputs {
		if slices.Contains(names, s.Name) {
			return nil, fmt.Errorf("output: two outputs are named %q", s.Name)
		}
		if s.Output == nil {
			return nil, fmt.Errorf("output %s: BUG: no Output", s.Name)
		}
		names = append(names, s.Name)
	}
	j, err := journal.Open(cfg.Journal, names)
	if err != nil {
		return nil, err
	}
	f := &Fanout{cfg: cfg, log: cfg.Logger.With("component", "outputs"), j: j,
		appendFailures: cfg.Metrics.GetOrCreateCounter(`vigil_journal_append_failures_total`)}
	for _, s := range cfg.Outputs {
		rd, err := j.Reader(s.Name)
		if err != nil {
			j.Close()
			return nil, err
		}
		f.runners = append(f.runners, newRunner(s, rd, cfg.DeadLetters, f.log, cfg.Metrics))
	}
	return f, nil
}

// Start runs every output's runner until Close.
func (f *Fanout) Start(ctx context.Context) {
	ctx, f.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for _, r := range f.runners {
		f.wg.Go(func() { r.run(ctx) })
	}
}

// Write implements pipeline.Sink: it appends batch to the journal and
// returns once the journal has it (durably, per its fsync policy). When the
// append fails (a full disk), it logs once, keeps retrying every second and
// holds the pipeline (the input is not acknowledged meanwhile) until ctx is
// done: alerts are never dropped here.
func (f *Fanout) Write(ctx context.Context, batch []pipeline.Alert) error {
	for {
		err := f.j.Append(ctx, batch)
		if err == nil {
			f.setAppendErr(nil)
			return nil
		}
		if ctx.Err() != nil || errors.Is(err, journal.ErrClosed) {
			return err
		}
		f.appendFailures.Inc()
		f.setAppendErr(err)
		if !sleep(ctx, time.Second) {
			return err
		}
	}
}

func (f *Fanout) setAppendErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case err != nil && f.appendErr == nil:
		f.log.Error("cannot write alerts to the journal; holding the input and retrying", "err", err)
	case err == nil && f.appendErr != nil:
		f.log.Info("journal writable again")
	}
	f.appendErr = err
}

// Healthy reports an error while alerts cannot be written to the journal.
func (f *Fanout) Healthy() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.appendErr != nil {
		return fmt.Errorf("alert journal: %w", f.appendErr)
	}
	return nil
}

// Statuses reports each output's health, in configuration order.
func (f *Fanout) Statuses() []Status {
	st := make([]Status, len(f.runners))
	for i, r := range f.runners {
		st[i] = r.status()
	}
	return st
}

// Close lets the outputs catch up for up to DrainTimeout, stops them,
// closes them and the journal. What was not delivered stays in the journal.
func (f *Fanout) Close() error {
	deadline := time.Now().Add(f.cfg.DrainTimeout)
	for time.Now().Before(deadline) && !f.caughtUp() {
		time.Sleep(10 * time.Millisecond)
	}
	if f.cancel != nil {
		f.cancel()
	}
	f.wg.Wait()
	var errs []error
	for _, r := range f.runners {
		if lag := r.rd.Lag(); lag > 0 {
			f.log.Warn("output stopped with alerts undelivered; they are sent after the next start", "output", r.spec.Name, "alerts", lag)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := r.spec.Output.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("output %s: close: %w", r.spec.Name, err))
		}
		cancel()
		r.rd.Close()
	}
	errs = append(errs, f.j.Close())
	return errors.Join(errs...)
}

func (f *Fanout) caughtUp() bool {
	for _, r := range f.runners {
		if r.rd.Lag() > 0 {
			return false
		}
	}
	return true
}

// DeadLetterFile appends dead letters to a file as JSON lines:
//
//	{"time":"…","output":"siem","reason":"…","alert":{…}}
//
// and fsyncs each, so what a destination refused is kept with the reason.
type DeadLetterFile struct {
	mu   sync.Mutex
	f    *os.File
	buf  []byte
	name string
}

// OpenDeadLetterFile opens (creating) path for appending.
func OpenDeadLetterFile(path string) (*DeadLetterFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	return &DeadLetterFile{f: f, name: path}, nil
}

// Put implements DeadLetters.
func (d *DeadLetterFile) Put(output string, a *pipeline.Alert, reason error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	b := append(d.buf[:0], `{"time":"`...)
	b = time.Now().UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","output":`...)
	b = pipeline.AppendJSONString(b, output)
	b = append(b, `,"reason":`...)
	b = pipeline.AppendJSONString(b, reason.Error())
	b = append(b, `,"alert":`...)
	b = a.AppendJSON(b)
	b = append(b, "}\n"...)
	d.buf = b
	if _, err := d.f.Write(b); err != nil {
		return fmt.Errorf("dead letters %s: %w", d.name, err)
	}
	return d.f.Sync()
}

// Close closes the file.
func (d *DeadLetterFile) Close() error { return d.f.Close() }

// Appended reports the journal offset after the last alert written: the
// alerts of every Write that has returned lie below it.
func (f *Fanout) Appended() uint64 {
	_, next := f.j.Position()
	return next
}

// WaitDelivered returns once every output has delivered (or dead-lettered,
// or dropped and counted) every alert below offset, or with ctx's error.
// A worker of the scale-out waits for it before it commits a checkpoint:
// the alerts a checkpoint's messages caused must not live only in this
// worker's journal, which a failover would leave behind.
func (f *Fanout) WaitDelivered(ctx context.Context, offset uint64) error {
	for {
		_, next := f.j.Position()
		done := true
		for _, r := range f.runners {
			// next was read first, so next - lag never overstates what
			// was delivered.
			if lag := r.rd.Lag(); next-min(lag, next) < offset {
				done = false
				break
			}
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
