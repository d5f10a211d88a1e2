package output

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/vigil-iot/vigil/pipeline"
)

// Output delivers batches of alerts to one destination. The Runner owns
// everything else: queueing (the journal cursor), batching, retries with
// backoff, reconnecting, dead letters and metrics. Methods are called from
// one goroutine, never concurrently.
type Output interface {
	// Connect establishes the connection. It is called before the first
	// Write and again before the next attempt after a Write failed with a
	// retryable error, so it must first drop a broken connection it holds.
	// An output whose client reconnects by itself may make it cheap. It
	// should fail within a bounded time (ctx carries the deadline).
	Connect(ctx context.Context) error
	// Write delivers batch and returns nil only when the destination has
	// accepted every alert, in the strongest sense it offers (acknowledged
	// by the broker, stored by the stream, indexed by the collector). It
	// must not retain batch. A plain error means none is known accepted and
	// the whole batch is retried; an error wrapped with Permanent means the
	// destination refuses the batch for good (it goes to the dead letters);
	// a *BatchError reports alerts individually.
	Write(ctx context.Context, batch []pipeline.Alert) error
	// Close flushes and releases the connection. It is called once, last.
	Close(ctx context.Context) error
}

// Formatter renders one alert as one event in a destination's format.
// Append appends the event to dst, without framing (no trailing newline),
// and returns the extended slice. The same alert always yields the same
// bytes. A Formatter is safe for use by one goroutine at a time.
type Formatter interface {
	Append(dst []byte, a *pipeline.Alert) []byte
}

// FormatterFunc adapts a function to a Formatter.
type FormatterFunc func(dst []byte, a *pipeline.Alert) []byte

// Append implements Formatter.
func (f FormatterFunc) Append(dst []byte, a *pipeline.Alert) []byte { return f(dst, a) }

// Meta describes Vigil itself, the observer, in the formats that name the
// product that raised an event (CEF and LEEF headers, ECS observer.*, OCSF
// metadata.product, syslog APP-NAME and HOSTNAME).
type Meta struct {
	Vendor   string // "Vigil"
	Product  string // "Vigil"
	Version  string // the binary's version, e.g. "0.4.0" or "devel"
	Hostname string // the host Vigil runs on
}

// permanent marks an error the destination will repeat for the same input.
type permanent struct{ err error }

func (p *permanent) Error() string { return p.err.Error() }
func (p *permanent) Unwrap() error { return p.err }

// Permanent marks err as a refusal that retrying cannot cure (an HTTP 4xx
// other than 408 and 429, a broker's "not authorized", a schema error): the
// Runner sends the alerts to the dead letters instead of retrying. A nil err
// stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanent{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p *permanent
	return errors.As(err, &p)
}

// ItemError is the failure of one alert of a batch.
type ItemError struct {
	Index int   // position in the batch given to Write
	Err   error // wrapped with Permanent when retrying cannot cure it
}

// BatchError reports a batch the destination accepted in part (an
// Elasticsearch bulk response with item errors, say). Alerts not listed in
// Failed were accepted. The Runner dead-letters the permanent failures and
// retries the others.
type BatchError struct {
	Failed []ItemError
}

func (e *BatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d alerts of the batch failed", len(e.Failed))
	if len(e.Failed) > 0 {
		fmt.Fprintf(&b, " (first: alert %d: %v)", e.Failed[0].Index, e.Failed[0].Err)
	}
	return b.String()
}

// sorted returns the failures ordered by index, without duplicates or
// indexes outside [0, n).
func (e *BatchError) sorted(n int) []ItemError {
	f := make([]ItemError, 0, len(e.Failed))
	for _, it := range e.Failed {
		if it.Index >= 0 && it.Index < n {
			f = append(f, it)
		}
	}
	sort.SliceStable(f, func(i, j int) bool { return f[i].Index < f[j].Index })
	out := f[:0]
	for i, it := range f {
		if i > 0 && it.Index == f[i-1].Index {
			continue
		}
		out = append(out, it)
	}
	return out
}
