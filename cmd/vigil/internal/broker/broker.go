// Package broker runs an embedded MQTT v5 broker on loopback, for the demo
// and fast local tests. Plants run Mosquitto; Vigil's integration tests use a
// real one.
package broker

import (
	"fmt"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Broker is a running embedded broker.
type Broker struct {
	srv  *mqtt.Server
	addr string
}

// Start starts a broker listening on addr (e.g. "127.0.0.1:0" for a free
// port). It allows every client: use it on loopback only.
func Start(addr string, log *slog.Logger) (*Broker, error) {
	srv := mqtt.New(&mqtt.Options{
		InlineClient: true,
		Logger:       log.With("component", "embedded-broker"),
	})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	ln := listeners.NewTCP(listeners.Config{ID: "vigil-embedded", Address: addr})
	if err := srv.AddListener(ln); err != nil {
		return nil, fmt.Errorf("embedded broker: listen on %s: %w", addr, err)
	}
	if err := srv.Serve(); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	return &Broker{srv: srv, addr: ln.Address()}, nil
}

// URL is the broker's mqtt:// URL.
func (b *Broker) URL() string { return "mqtt://" + b.addr }

// Publish publishes a message from inside the broker (no network client).
func (b *Broker) Publish(topic string, payload []byte, qos byte) error {
	return b.srv.Publish(topic, payload, false, qos)
}

// Close stops the broker.
func (b *Broker) Close() error { return b.srv.Close() }
