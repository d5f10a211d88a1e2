package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vigil-iot/vigil/cmd/vigil/internal/broker"
	"github.com/vigil-iot/vigil/cmd/vigil/internal/config"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/mqtt"
	"github.com/vigil-iot/vigil/pipeline/sim"
)

// demoOptions are the flags of "vigil demo".
type demoOptions struct {
	devices, anomalous int
	speed              float64
	listen, metrics    string
	duration           time.Duration
	plain              bool
}

// runDemo starts an embedded MQTT broker on loopback, a simulated fleet that
// publishes to it, and the live pipeline subscribed to it, with a terminal view.
func runDemo(ctx context.Context, e *env, args []string) error {
	o := demoOptions{}
	fs := newFlags(e, "demo", "[flags]")
	fs.IntVar(&o.devices, "devices", 12, "simulated devices")
	fs.IntVar(&o.anomalous, "anomalous", 8, "how many of them get anomalies")
	fs.Float64Var(&o.speed, "speed", 20, "plant time runs this many times faster than real time")
	fs.StringVar(&o.listen, "listen", "127.0.0.1:0", "address of the embedded broker (loopback)")
	fs.StringVar(&o.metrics, "metrics", "", "serve /metrics, /healthz and /readyz on this `address` (e.g. 127.0.0.1:9464)")
	fs.DurationVar(&o.duration, "for", 0, "stop after this much real time (0: until Ctrl-C)")
	fs.BoolVar(&o.plain, "plain", false, "print the view without redrawing the screen")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.speed <= 0 || o.speed > 1000 {
		return fmt.Errorf("%w: -speed must be in (0, 1000]", errUsage)
	}
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	return demo(ctx, e, o)
}

func demo(ctx context.Context, e *env, o demoOptions) error {
	quiet := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The embedded broker warns about connections closed at shutdown; only
	// its errors matter here.
	b, err := broker.Start(o.listen, slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		return err
	}
	defer b.Close()

	simCfg := sim.DefaultConfig()
	simCfg.Devices, simCfg.Anomalous = o.devices, o.anomalous
	simCfg.Duration = 0 // until stopped
	simCfg.LeadIn = 6 * time.Minute
	simCfg.Start = time.Now().UTC().Truncate(time.Second)
	gen, err := sim.New(simCfg)
	if err != nil {
		return err
	}

	cfg := config.Default()
	cfg.MQTT.Broker = b.URL()
	cfg.MQTT.ClientID = "vigil-demo"
	cfg.MQTT.CleanStart = true
	cfg.MQTT.Subscriptions = []mqtt.Subscription{{Filter: "plant/#", QoS: 1}}
	cfg.Metrics.Listen = o.metrics
	cfg.Pipeline.DrainTimeout = 3 * time.Second
	cfg.Alerts.DrainTimeout = time.Second
	jdir, err := os.MkdirTemp("", "vigil-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(jdir)
	cfg.Alerts.Journal.Dir = filepath.Join(jdir, "journal")
	cfg.State.File = "" // the demo starts afresh every time

	view := newLiveView()
	var (
		mu     sync.Mutex
		labels []sim.Label
		pl     *pipeline.Pipeline
	)
	hooks := &liveHooks{
		extraSink: view,
		started: func(p *pipeline.Pipeline, _ *mqtt.Source) {
			mu.Lock()
			pl = p
			mu.Unlock()
		},
	}

	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	var wg sync.WaitGroup
	// The fleet: publish each message when its plant time comes, at speed.
	simCtx, stopSim := context.WithCancel(ctx)
	defer stopSim()
	wg.Go(func() {
		wall0 := time.Now()
		for simCtx.Err() == nil {
			m, ok := gen.Next()
			if !ok {
				return
			}
			due := wall0.Add(time.Duration(float64(m.Time.Sub(simCfg.Start)) / o.speed))
			if d := time.Until(due); d > 0 {
				select {
				case <-time.After(d):
				case <-simCtx.Done():
					return
				}
			}
			// QoS 0 inside the process: mochi-mqtt 2.7.9 (the embedded
			// broker) can deadlock on QoS 1 deliveries, taking its in-flight
			// lock for reading twice while a writer waits (Inflight.
			// NextImmediate calls GetAll) — the demo then hung at Ctrl-C.
			if err := b.Publish(m.Topic, m.Payload, 0); err != nil {
				quiet.Warn("simulator publish failed", "err", err)
			}
			mu.Lock()
			labels = gen.DrainLabels(labels)
			mu.Unlock()
		}
	})
	// The screen.
	tty := !o.plain && isTerminal(e.stdout)
	title := fmt.Sprintf("Vigil demo · embedded broker %s · %d devices (%d with anomalies) · plant time ×%g", b.URL(), o.devices, o.anomalous, o.speed)
	start := time.Now()
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		if !tty {
			tick.Reset(10 * time.Second)
		}
		var lastFrames uint64
		last := time.Now()
		for {
			select {
			case <-runCtx.Done():
				return
			case now := <-tick.C:
				mu.Lock()
				p := pl
				mu.Unlock()
				if p == nil {
					continue
				}
				st := p.Stats()
				rate := float64(st.Frames-lastFrames) / now.Sub(last).Seconds()
				lastFrames, last = st.Frames, now
				view.render(e.stdout, viewHeader{title: title, stats: st, rate: rate, elapsed: time.Since(start)}, tty)
			}
		}
	})

	runErr := live(runCtx, &env{stdin: e.stdin, stdout: e.stdout, stderr: e.stderr, log: quiet}, cfg, hooks)
	stopSim()
	stopRun()
	wg.Wait()

	mu.Lock()
	labels = gen.DrainLabels(labels)
	active := gen.Active(nil) // in progress: windows for false alarms, too early to judge catches
	p := pl
	mu.Unlock()
	if p != nil {
		view.render(e.stdout, viewHeader{title: title, stats: p.Stats(), elapsed: time.Since(start)}, false)
	}
	view.mu.Lock()
	fired, upTo := append([]pipeline.Alert(nil), view.all...), view.lastTime
	view.mu.Unlock()
	fmt.Fprintf(e.stdout, "\nWhat the simulator injected versus what Vigil caught (plant time up to %s):\n",
		time.Unix(0, upTo).UTC().Format(time.TimeOnly))
	score(append(labels, active...), fired, upTo).print(e.stdout)
	if runErr != nil && ctx.Err() == nil {
		return runErr
	}
	return nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
