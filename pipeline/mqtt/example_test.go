package mqtt_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/mqtt"
)

func ExampleConfig_Validate() {
	cfg := mqtt.DefaultConfig()
	cfg.Broker = "mqtt://broker.plant.example"
	cfg.ClientID = "vigil-line-a"
	fmt.Println(cfg.Validate())
	// Output:
	// broker: plaintext connection to non-loopback host "broker.plant.example" refused: use mqtts:// (TLS), or set allow_plaintext: true if the network is trusted
}

// Example wires a Source and a Publisher around the pipeline, failing fast
// at startup on a configuration or credential problem.
func Example() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	set := metrics.NewSet()

	cfg := mqtt.DefaultConfig()
	cfg.Broker = "mqtts://broker.plant.example:8883"
	cfg.ClientID = "vigil-line-a"
	cfg.Username = "vigil"
	cfg.PasswordFile = "/run/secrets/mqtt-password"
	cfg.TLS.CAFile = "/etc/vigil/ca.pem"
	cfg.Subscriptions = []mqtt.Subscription{{Filter: "plant/+/+/telemetry", QoS: 1}}

	src, err := mqtt.NewSource(cfg, mqtt.SourceOptions{ExcludeTopicPrefix: "vigil/", Logger: log, Metrics: set})
	if err != nil {
		log.Error("mqtt source", "err", err)
		return
	}
	defer src.Close()
	sink, err := mqtt.NewPublisher(cfg, mqtt.PublisherOptions{StateTopic: "vigil/state/{device}", Logger: log, Metrics: set})
	if err != nil {
		log.Error("mqtt publisher", "err", err)
		return
	}
	defer sink.Close()

	ctx := context.Background()
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := src.Start(startCtx); err != nil {
		// e.g. mqtt: broker refused the connection: not authorized (check username and password_file, …)
		log.Error("cannot start", "err", err)
		return
	}
	if err := sink.Start(startCtx); err != nil {
		log.Error("cannot start", "err", err)
		return
	}

	p, err := pipeline.New(pipeline.Config{Metrics: set, Logger: log, NewProcessor: newProcessor})
	if err != nil {
		log.Error("pipeline", "err", err)
		return
	}
	// The pipeline acknowledges each batch after its alerts were published.
	if err := p.Run(ctx, src, sink); err != nil {
		log.Error("run", "err", err)
	}
}

func newProcessor(int) pipeline.Processor { return nil }
