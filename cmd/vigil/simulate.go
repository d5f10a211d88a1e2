package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-iot/vigil/cmd/vigil/internal/config"
	"github.com/vigil-iot/vigil/internal/redact"
	"github.com/vigil-iot/vigil/pipeline/mqtt"
	"github.com/vigil-iot/vigil/pipeline/sim"
)

func runSimulate(ctx context.Context, e *env, args []string) error {
	var err error
	cfg := sim.DefaultConfig()
	var out, labels, start, brokerURL, cfgPath, traffic string
	var speed float64
	var qos uint
	fs := newFlags(e, "simulate", "--out FILE [flags]  |  --broker URL [--config FILE] [flags]")
	fs.StringVar(&out, "out", "", "write the plant log (JSON lines) to `file` (\"-\" is stdout)")
	fs.StringVar(&brokerURL, "broker", "", "publish the fleet live to this MQTT broker `URL` instead (mqtt:// or mqtts://)")
	fs.StringVar(&cfgPath, "config", "", "with --broker: take TLS, credentials and client ID from the mqtt section of this `file`")
	fs.Float64Var(&speed, "speed", 1, "with --broker: plant time runs this many times faster than real time")
	fs.UintVar(&qos, "qos", 1, "with --broker: QoS of the published telemetry (0 or 1)")
	fs.StringVar(&labels, "labels", "", "write the injected anomalies as JSON to `file` (default: beside OUT, its name without .gz, .log, .jsonl or .txt and with .labels.json: plant.log → plant.labels.json; none for --out -)")
	fs.IntVar(&cfg.Devices, "devices", cfg.Devices, "number of devices")
	fs.IntVar(&cfg.Anomalous, "anomalous", cfg.Anomalous, "how many of the devices get anomalies")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "length of the simulated run (event time)")
	fs.DurationVar(&cfg.Interval, "interval", cfg.Interval, "publishing interval of each device")
	fs.DurationVar(&cfg.Cycle, "cycle", cfg.Cycle, "operating cycle; one anomaly per cycle in turn")
	fs.DurationVar(&cfg.LeadIn, "lead-in", cfg.LeadIn, "clean period at the start, for learning")
	fs.Float64Var(&cfg.InjectProb, "inject-prob", cfg.InjectProb, "probability of an injection per device and cycle")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "random seed (same seed, same log)")
	fs.BoolVar(&cfg.Drifts, "drifts", cfg.Drifts, "inject slow drifts (cooling failure, wear)")
	fs.BoolVar(&cfg.Faults, "faults", cfg.Faults, "inject a device status fault")
	fs.BoolVar(&cfg.Topics, "topics", cfg.Topics, "write \"topic payload\" lines as mosquitto_sub -v prints them")
	fs.StringVar(&start, "start", cfg.Start.Format(time.RFC3339), "event time of the first message (RFC 3339)")
	fs.StringVar(&traffic, "traffic", "", "inject traffic scenarios after the lead-in, each once on its own device: a comma-separated `list` of flood, silence, replay, spoof, rogue, or all")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if (out == "") == (brokerURL == "") {
		return fmt.Errorf("%w: --out is required (or --broker to publish live)", errUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if cfg.Traffic, err = sim.ParseTraffic(traffic); err != nil {
		return fmt.Errorf("%w: --traffic: %v", errUsage, err)
	}
	if brokerURL != "" {
		if redact.HasUserinfo(brokerURL) {
			return fmt.Errorf("%w: --broker: credentials must not be part of the URL (%q): give --config a file whose mqtt section sets username, and password_file or password_env", errUsage, redact.URL(brokerURL))
		}
		if qos > 1 || speed <= 0 {
			return fmt.Errorf("%w: --qos must be 0 or 1 and --speed positive", errUsage)
		}
		set := func(name string) bool {
			found := false
			fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
			return found
		}
		if !set("duration") {
			cfg.Duration = 0 // live: until stopped
		}
		if !set("start") {
			cfg.Start = time.Now().UTC()
		} else if cfg.Start, err = time.Parse(time.RFC3339, start); err != nil {
			return fmt.Errorf("%w: -start: %v", errUsage, err)
		}
		cfg.Topics = true
		if err := cfg.Validate(); err != nil {
			return err
		}
		return simulateLive(ctx, e, cfg, brokerURL, cfgPath, speed, byte(qos))
	}
	t, err := time.Parse(time.RFC3339, start)
	if err != nil {
		return fmt.Errorf("%w: -start: %v", errUsage, err)
	}
	cfg.Start = t
	if cfg.Duration == 0 {
		return fmt.Errorf("%w: -duration must be positive when writing a file", errUsage)
	}
	if err := cfg.Validate(); err != nil {
		return err
	}

	var w io.Writer = e.stdout
	var f *os.File
	if out != "-" {
		if f, err = createFile(out); err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	ls, err := sim.WriteLog(bw, cfg)
	if err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if f != nil {
		if err := f.Close(); err != nil {
			return err
		}
	}
	if labels == "" && out != "-" {
		labels = trimExt(out) + ".labels.json"
	}
	if labels != "" {
		lf, err := createFile(labels)
		if err != nil {
			return err
		}
		if err := sim.WriteLabels(lf, ls); err != nil {
			lf.Close()
			return err
		}
		if err := lf.Close(); err != nil {
			return err
		}
	}
	to := "labels → " + labels
	if labels == "" {
		to = "no labels file (--labels FILE writes one)"
	}
	fmt.Fprintf(e.stderr, "simulate: %d devices (%d anomalous), %s of telemetry, %d injected anomalies → %s, %s\n",
		cfg.Devices, cfg.Anomalous, cfg.Duration, len(ls), out, to)
	return nil
}

// simulateLive publishes the simulated fleet to a broker, each message when its
// plant time comes (at speed), until ctx is done or the run's duration ends.
// Connection settings other than the URL come from the config file's mqtt
// section, so TLS and credentials work as for "vigil run".
func simulateLive(ctx context.Context, e *env, cfg sim.Config, brokerURL, cfgPath string, speed float64, qos byte) error {
	fc := config.Default()
	if cfgPath != "" {
		var err error
		if fc, err = loadConfig(cfgPath); err != nil {
			return err
		}
	}
	mc := fc.MQTT
	mc.Broker = brokerURL
	if mc.ClientID == "" {
		mc.ClientID = "vigil-sim"
	}
	pub, err := mqtt.NewPublisher(mc, mqtt.PublisherOptions{
		ClientID: mc.ClientID + "-sim",
		Logger:   e.log.With("component", "simulator"),
	})
	if err != nil {
		return err
	}
	defer pub.Close()
	if err := pub.Start(ctx); err != nil {
		return err
	}
	gen, err := sim.New(cfg)
	if err != nil {
		return err
	}
	e.log.Info("publishing simulated fleet", "broker", redact.URL(brokerURL), "devices", cfg.Devices, "anomalous", cfg.Anomalous,
		"rate_per_s", float64(cfg.Devices)/cfg.Interval.Seconds()*speed, "qos", qos)

	// Publish concurrently so QoS 1 round trips do not cap the rate, on
	// workers chosen by device, so each device's messages stay in order.
	type msg struct{ topic, payload []byte }
	const workers = 16
	queues := make([]chan msg, workers)
	var wg sync.WaitGroup
	var sent, failed atomic.Int64
	for i := range queues {
		queues[i] = make(chan msg, 64)
		wg.Go(func() {
			for m := range queues[i] {
				if err := pub.Publish(ctx, string(m.topic), m.payload, qos); err != nil {
					if failed.Add(1) == 1 && ctx.Err() == nil {
						e.log.Error("publish failed", "topic", string(m.topic), "err", err)
					}
					continue
				}
				sent.Add(1)
			}
		})
	}
	wall0 := time.Now()
	for ctx.Err() == nil {
		m, ok := gen.Next()
		if !ok {
			break
		}
		due := wall0.Add(time.Duration(float64(m.Time.Sub(cfg.Start)) / speed))
		if d := time.Until(due); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		h := fnv.New32a()
		h.Write([]byte(m.Device))
		select {
		case queues[h.Sum32()%workers] <- msg{[]byte(m.Topic), append([]byte(nil), m.Payload...)}:
		case <-ctx.Done():
		}
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
	fmt.Fprintf(e.stderr, "simulate: published %d messages (%d failed) to %s; %d anomalies injected\n",
		sent.Load(), failed.Load(), redact.URL(brokerURL), len(gen.DrainLabels(nil))+len(gen.Active(nil)))
	return nil
}

// trimExt removes the last extension of a path (and a .gz before it).
func trimExt(p string) string {
	for _, ext := range []string{".gz", ".log", ".jsonl", ".txt"} {
		if len(p) > len(ext) && p[len(p)-len(ext):] == ext {
			p = p[:len(p)-len(ext)]
		}
	}
	return p
}
