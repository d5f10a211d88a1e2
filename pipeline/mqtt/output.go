package mqtt

import (
	"cmp"
	"context"
	"errors"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// DefaultPublishTimeout bounds one publish attempt of an Output.
const DefaultPublishTimeout = 10 * time.Second

// Output is the alert Publisher as an output.Output. Each Connect and
// Write is a single, bounded attempt: Connect waits at most the connection's
// ConnectTimeout for the broker, Write at most PublishTimeout for its
// acknowledgements, and a failure is returned to the runner, which owns
// retries, backoff, failure metrics and the output's status. When the
// broker refuses a publish (an ACL), the batch is sent again alert by alert
// to find which ones it refuses: those go to the dead letters, the others
// are delivered (some twice: at least once).
type Output struct {
	p              onceWriter
	connectTimeout time.Duration
	publishTimeout time.Duration
}

// onceWriter is what an Output needs of its *Publisher.
type onceWriter interface {
	Start(ctx context.Context) error
	WriteOnce(ctx context.Context, batch []pipeline.Alert) error
	Close() error
}

// NewOutput returns the publisher of cfg and opts as an output. It does not
// connect.
func NewOutput(cfg Config, opts PublisherOptions) (*Output, error) {
	p, err := NewPublisher(cfg, opts)
	if err != nil {
		return nil, err
	}
	return &Output{p: p, connectTimeout: p.link.cfg.ConnectTimeout, publishTimeout: cmp.Or(opts.PublishTimeout, DefaultPublishTimeout)}, nil
}

// Connect implements output.Output: it starts the connection once and waits
// for it (at most ConnectTimeout); after the first connection the client
// reconnects by itself and Connect returns at once.
func (o *Output) Connect(ctx context.Context) error {
	if o.connectTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.connectTimeout)
		defer cancel()
	}
	return o.p.Start(ctx)
}

// Write implements output.Output with one attempt per alert.
func (o *Output) Write(ctx context.Context, batch []pipeline.Alert) error {
	if o.publishTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.publishTimeout)
		defer cancel()
	}
	err := o.p.WriteOnce(ctx, batch)
	var pe *PublishError
	if !errors.As(err, &pe) {
		return err
	}
	if len(batch) == 1 {
		return output.Permanent(err)
	}
	var be output.BatchError
	for i := range batch {
		err := o.p.WriteOnce(ctx, batch[i:i+1])
		switch {
		case err == nil:
		case errors.As(err, &pe):
			be.Failed = append(be.Failed, output.ItemError{Index: i, Err: output.Permanent(err)})
		default:
			be.Failed = append(be.Failed, output.ItemError{Index: i, Err: err})
			if ctx.Err() != nil {
				for k := i + 1; k < len(batch); k++ {
					be.Failed = append(be.Failed, output.ItemError{Index: k, Err: err})
				}
				return &be
			}
		}
	}
	if len(be.Failed) == 0 {
		return nil
	}
	return &be
}

// Close implements output.Output.
func (o *Output) Close(context.Context) error { return o.p.Close() }

// Interface check.
var _ output.Output = (*Output)(nil)
