package mqtt

import (
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/vigil-iot/vigil/pipeline"
)

// PublisherOptions configures a Publisher beyond the shared connection Config.
type PublisherOptions struct {
	// Topic is the alert topic template (default DefaultAlertTopic).
	// Placeholders: {kind}, {device}, {severity}, {detector}. Values are
	// sanitised: '/', '+' and '#' become '_', so a device name cannot inject
	// topic levels or wildcards.
	Topic string `yaml:"topic"`
	// StateTopic, when set, is the template of a retained per-device message
	// listing the alerts firing now, e.g. "vigil/state/{device}". It may use
	// only {device}, and must.
	StateTopic string `yaml:"state_topic"`
	// QoS is 1 (default) or 2. Alerts are never sent at QoS 0.
	QoS byte `yaml:"qos"`
	// ClientID is the publisher's client ID (default Config.ClientID + "-pub";
	// it must differ from the source's).
	ClientID string `yaml:"client_id"`
	// Concurrency bounds the devices whose alerts are published at once
	// within a Write (default 32).
	Concurrency int `yaml:"concurrency"`
	// PublishTimeout bounds one attempt to publish a batch as an output
	// (Output.Write): the wait for the broker's acknowledgements (default
	// 10s). A batch not acknowledged in time is retried by the runner.
	PublishTimeout time.Duration `yaml:"publish_timeout"`
	// Logger receives connection state changes (default: discard).
	Logger *slog.Logger `yaml:"-"`
	// Metrics receives the publisher's metrics (default: a private set).
	Metrics *metrics.Set `yaml:"-"`
}

// Publisher is a pipeline.Sink that republishes alerts to MQTT.
//
// Each alert is published as its JSON form (Alert.AppendJSON) with content
// type application/json and the MQTT 5 user properties severity, kind and
// state. Write returns only when the broker has acknowledged every alert of
// the batch, retrying across reconnects, so no alert is lost; a retry after an
// unacknowledged attempt may deliver an alert twice. Alerts of one device are
// published in order, devices concurrently.
//
// With StateTopic set, the Publisher also keeps, per device, the alerts that
// are firing and publishes the list as a retained message after each batch
// that changed it:
//
//	{"device":"pump-7","firing":[{"id":"…","kind":"overpressure","detector":"overpressure.spike","severity":"critical","since":"2024-05-01T10:00:00Z"}]}
//
// with an empty list once all have resolved. The state is in memory: after a
// restart a device's retained state is corrected by its next transition.
type Publisher struct {
	link   *link
	topic  topicTemplate
	state  *topicTemplate
	qos    byte
	conc   int
	closed atomic.Bool

	firing map[string]map[string]firingAlert // device → alert ID → alert; Write's only

	sessMu   sync.Mutex
	sessCtx  context.Context // cancelled when a connection comes up without the session
	sessDone context.CancelFunc

	published *metrics.Counter
	states    *metrics.Counter
	retries   *metrics.Counter
	failed    *metrics.Counter
}

type firingAlert struct {
	ID       string `json:"id"`
	Kind     string `json:"kind"`
	Detector string `json:"detector"`
	Severity string `json:"severity"`
	Since    string `json:"since"`
	started  int64
}

// NewPublisher validates cfg and opts and returns a Publisher. It does not
// connect: call Start to connect and fail fast, or let the first Write do it.
func NewPublisher(cfg Config, opts PublisherOptions) (*Publisher, error) {
	var errs []error
	tmpl := cmp.Or(opts.Topic, DefaultAlertTopic)
	topic, err := parseTopicTemplate(tmpl, []string{"kind", "device", "severity", "detector"}, nil)
	if err != nil {
		errs = append(errs, fmt.Errorf("topic: %w", err))
	}
	p := &Publisher{topic: topic, qos: cmp.Or(opts.QoS, 1), conc: cmp.Or(opts.Concurrency, 32), firing: map[string]map[string]firingAlert{}}
	if opts.StateTopic != "" {
		st, err := parseTopicTemplate(opts.StateTopic, []string{"device"}, []string{"device"})
		if err != nil {
			errs = append(errs, fmt.Errorf("state_topic: %w", err))
		}
		p.state = &st
	}
	if p.qos > 2 {
		errs = append(errs, fmt.Errorf("qos: must be 1 or 2, not %d", p.qos))
	}
	if p.conc < 0 {
		errs = append(errs, errors.New("concurrency: must not be negative"))
	}
	if opts.PublishTimeout < 0 {
		errs = append(errs, errors.New("publish_timeout: must not be negative"))
	}
	clientID := cmp.Or(opts.ClientID, cfg.ClientID+"-pub")
	if opts.ClientID != "" && opts.ClientID == cfg.ClientID {
		errs = append(errs, errors.New("client_id: must differ from the source's client ID"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("mqtt: invalid publisher options: %w", err)
	}
	set := opts.Metrics
	if set == nil {
		set = metrics.NewSet()
	}
	p.published = set.GetOrCreateCounter("vigil_mqtt_alerts_published_total")
	p.states = set.GetOrCreateCounter("vigil_mqtt_state_published_total")
	p.retries = set.GetOrCreateCounter("vigil_mqtt_publish_retries_total")
	p.failed = set.GetOrCreateCounter("vigil_mqtt_publish_failures_total")
	p.sessCtx, p.sessDone = context.WithCancel(context.Background())
	l, err := newLink("publisher", clientID, cfg, opts.Logger, set, linkHooks{prepare: p.prepare})
	if err != nil {
		return nil, err
	}
	p.link = l
	return p, nil
}

// Start connects and returns once connected, failing fast like Source.Start.
func (p *Publisher) Start(ctx context.Context) error { return p.link.start(ctx) }

// prepare runs after each connect. paho forgets in-flight publishes when the
// broker has no session for us; their Publish calls would wait for
// acknowledgements that never come, so they are cancelled and retried.
func (p *Publisher) prepare(_ context.Context, _ *autopaho.ConnectionManager, ca *paho.Connack) error {
	if !ca.SessionPresent {
		p.sessMu.Lock()
		p.sessDone()
		p.sessCtx, p.sessDone = context.WithCancel(context.Background())
		p.sessMu.Unlock()
	}
	return nil
}

func (p *Publisher) session() context.Context {
	p.sessMu.Lock()
	defer p.sessMu.Unlock()
	return p.sessCtx
}

// Write implements pipeline.Sink: it publishes the alerts of batch (and the
// state of their devices) and returns when the broker has acknowledged all of
// them, or with an error when ctx is done or the broker refuses an alert
// (for example, not authorized by its ACL). It connects on first use.
func (p *Publisher) Write(ctx context.Context, batch []pipeline.Alert) error {
	return p.write(ctx, batch, false)
}

// WriteOnce is Write with a single attempt per message: when the connection
// is down or lost before the broker acknowledged a message, it returns the
// error at once instead of waiting for the connection and retrying, so that
// its caller (the output framework's runner) owns retries, backoff and
// failure reporting. ctx bounds the wait for acknowledgements. A retried
// batch may deliver its alerts twice.
func (p *Publisher) WriteOnce(ctx context.Context, batch []pipeline.Alert) error {
	return p.write(ctx, batch, true)
}

func (p *Publisher) write(ctx context.Context, batch []pipeline.Alert, once bool) error {
	if len(batch) == 0 {
		return nil
	}
	if p.closed.Load() {
		return ErrClosed
	}
	if err := p.link.start(ctx); err != nil {
		return err
	}
	jobs := p.render(batch)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	sem := make(chan struct{}, p.conc)
	for _, msgs := range jobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			for _, m := range msgs {
				if err := p.publish(ctx, m, once); err != nil {
					errMu.Lock()
					if first == nil {
						first = err
					}
					errMu.Unlock()
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = fmt.Errorf("mqtt: publish alerts: %w", ctx.Err())
	}
	if first != nil {
		p.failed.Inc()
	}
	return first
}

// render builds the messages of a batch, grouped by device in order of first
// appearance, and updates the firing state.
func (p *Publisher) render(batch []pipeline.Alert) [][]*paho.Publish {
	idx := map[string]int{}
	var jobs [][]*paho.Publish
	var devices []string
	for i := range batch {
		a := &batch[i]
		j, ok := idx[a.Device]
		if !ok {
			j = len(jobs)
			idx[a.Device] = j
			jobs = append(jobs, nil)
			devices = append(devices, a.Device)
		}
		jobs[j] = append(jobs[j], &paho.Publish{
			QoS:     p.qos,
			Topic:   p.topic.render(a),
			Payload: a.AppendJSON(nil),
			Properties: &paho.PublishProperties{
				ContentType: "application/json",
				User: paho.UserProperties{
					{Key: "severity", Value: a.Severity.String()},
					{Key: "kind", Value: a.Kind},
					{Key: "state", Value: a.State.String()},
				},
			},
		})
		if p.state != nil {
			p.track(a)
		}
	}
	if p.state != nil {
		for j, dev := range devices {
			jobs[j] = append(jobs[j], p.stateMessage(dev))
		}
	}
	return jobs
}

// track updates the firing alerts of a's device.
func (p *Publisher) track(a *pipeline.Alert) {
	m := p.firing[a.Device]
	switch a.State {
	case pipeline.Firing:
		if m == nil {
			m = map[string]firingAlert{}
			p.firing[a.Device] = m
		}
		m[a.ID] = firingAlert{
			ID: a.ID, Kind: a.Kind, Detector: a.Detector, Severity: a.Severity.String(),
			Since: time.Unix(0, a.Started).UTC().Format(time.RFC3339Nano), started: a.Started,
		}
	case pipeline.Resolved:
		delete(m, a.ID)
	}
}

// stateMessage returns the retained state message of device; a device with
// nothing firing is forgotten after its empty list is rendered.
func (p *Publisher) stateMessage(device string) *paho.Publish {
	m := p.firing[device]
	list := make([]firingAlert, 0, len(m))
	for _, a := range m {
		list = append(list, a)
	}
	slices.SortFunc(list, func(x, y firingAlert) int {
		return cmp.Or(cmp.Compare(x.started, y.started), cmp.Compare(x.ID, y.ID))
	})
	if len(m) == 0 {
		delete(p.firing, device)
	}
	payload, err := json.Marshal(struct {
		Device string        `json:"device"`
		Firing []firingAlert `json:"firing"`
	}{device, list})
	if err != nil {
		panic("BUG: marshal alert state: " + err.Error())
	}
	return &paho.Publish{
		QoS:        p.qos,
		Retain:     true,
		Topic:      p.state.render(&pipeline.Alert{Device: device}),
		Payload:    payload,
		Properties: &paho.PublishProperties{ContentType: "application/json"},
	}
}

// publish sends one message and waits for the broker's acknowledgement,
// retrying across connection losses until ctx is done (with once, not
// retrying: the first failure is returned). A refusal by the broker (reason
// code >= 0x80) is returned, not retried.
func (p *Publisher) publish(ctx context.Context, m *paho.Publish, once bool) error {
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			p.retries.Inc()
			if err := p.await(ctx, attempt); err != nil {
				return err
			}
		}
		cm := p.link.manager()
		if cm == nil {
			return ErrClosed
		}
		pctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(p.session(), cancel)
		resp, err := cm.Publish(pctx, m)
		stop()
		cancel()
		if err == nil {
			if m.Retain {
				p.states.Inc()
			} else {
				p.published.Inc()
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("mqtt: publish to %q: %w", m.Topic, ctx.Err())
		}
		if resp != nil && resp.ReasonCode >= 0x80 {
			return &PublishError{Topic: m.Topic, Code: resp.ReasonCode, Username: p.link.cfg.Username}
		}
		if once || errors.Is(err, paho.ErrInvalidArguments) {
			return fmt.Errorf("mqtt: publish to %q: %w", m.Topic, err)
		}
		p.link.log.Debug("publish failed; retrying", "topic", m.Topic, "err", err.Error())
	}
}

// await waits before a retry: for the connection, then a short backoff.
func (p *Publisher) await(ctx context.Context, attempt int) error {
	cm := p.link.manager()
	if cm == nil {
		return ErrClosed
	}
	if err := cm.AwaitConnection(ctx); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("mqtt: publish: %w", ctx.Err())
		}
		return ErrClosed
	}
	d := min(p.link.cfg.ReconnectBackoff.Min<<min(attempt-1, 10), time.Second)
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mqtt: publish: %w", ctx.Err())
	}
}

// PublishError is a publish the broker refused.
type PublishError struct {
	Topic    string
	Code     byte // PUBACK/PUBREC reason code
	Username string
}

func (e *PublishError) Error() string {
	s := fmt.Sprintf("mqtt: broker refused publish to %q: %s", e.Topic, pubackReason(e.Code))
	if e.Code == 0x87 {
		s += fmt.Sprintf(" (check the broker's ACL: username %q needs write access)", e.Username)
	}
	return s
}

func pubackReason(code byte) string {
	switch code {
	case 0x80:
		return "unspecified error"
	case 0x83:
		return "implementation specific error"
	case 0x87:
		return "not authorized"
	case 0x90:
		return "topic name invalid"
	case 0x91:
		return "packet identifier in use"
	case 0x97:
		return "quota exceeded"
	case 0x99:
		return "payload format invalid"
	}
	return fmt.Sprintf("reason code 0x%02x", code)
}

// Connected reports whether the connection to the broker is up.
func (p *Publisher) Connected() bool { return p.link.up.Load() }

// TLSConnectionState returns the state of the most recent TLS handshake; ok
// is false before the first handshake and for plaintext connections.
func (p *Publisher) TLSConnectionState() (state tls.ConnectionState, ok bool) {
	return p.link.tlsConnectionState()
}

// Close disconnects cleanly and waits for the client's goroutines. Call it
// after the last Write has returned.
func (p *Publisher) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	err := p.link.close()
	p.sessMu.Lock()
	p.sessDone()
	p.sessMu.Unlock()
	return err
}

// Interface check.
var _ pipeline.Sink = (*Publisher)(nil)

// Publish publishes one raw message, such as simulated telemetry, and returns
// when the broker has acknowledged it (QoS 1 or 2) or it was sent (QoS 0),
// retrying across reconnects like Write. It connects on first use.
func (p *Publisher) Publish(ctx context.Context, topic string, payload []byte, qos byte) error {
	if p.closed.Load() {
		return ErrClosed
	}
	if err := p.link.start(ctx); err != nil {
		return err
	}
	return p.publish(ctx, &paho.Publish{Topic: topic, Payload: payload, QoS: qos}, false)
}
