package mqtt

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/mqtt/mqtttest"
)

// skipShort skips broker tests under -short.
func skipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("broker test: skipped with -short")
	}
}

// testConfig is a TLS connection to b as user, password from a file.
func testConfig(b *mqtttest.Broker, user, clientID string) Config {
	cfg := DefaultConfig()
	cfg.Broker = b.URL()
	cfg.ClientID = clientID
	cfg.Username = user
	cfg.PasswordFile = b.PasswordFile(user)
	cfg.TLS.CAFile = b.CAFile
	cfg.ConnectTimeout = 5 * time.Second
	cfg.ReconnectBackoff = Backoff{Min: 50 * time.Millisecond, Max: 500 * time.Millisecond}
	return cfg
}

// testLogger writes to the test's output (shown with -v or on failure).
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// telemetry is a device message carrying its sequence number.
func telemetry(seq int, device string, p float64) []byte {
	ts := time.Unix(1_780_000_000+int64(seq), 0).UTC().Format(time.RFC3339Nano)
	return fmt.Appendf(nil, `{"timestamp":%q,"node_id":%q,"data":{"p":%g,"seq":%d}}`, ts, device, p, seq)
}

// seqOf extracts the sequence number of a telemetry payload, or -1.
func seqOf(payload []byte) int {
	i := bytes.Index(payload, []byte(`"seq":`))
	if i < 0 {
		return -1
	}
	rest := payload[i+6:]
	j := bytes.IndexAny(rest, ",}")
	if j < 0 {
		return -1
	}
	n, err := strconv.Atoi(string(rest[:j]))
	if err != nil {
		return -1
	}
	return n
}

// dialDevice connects a plain autopaho client (not this package's code) to
// b's TLS listener as user.
func dialDevice(t testing.TB, b *mqtttest.Broker, user, clientID string, onPublish func(paho.PublishReceived) (bool, error)) *autopaho.ConnectionManager {
	t.Helper()
	u, _ := url.Parse("tls://" + b.URL()[len("mqtts://"):])
	pem, err := os.ReadFile(b.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	var handlers []func(paho.PublishReceived) (bool, error)
	if onPublish != nil {
		handlers = append(handlers, onPublish)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cm, err := autopaho.NewConnection(ctx, autopaho.ClientConfig{
		ServerUrls:            []*url.URL{u},
		TlsCfg:                &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"},
		KeepAlive:             30,
		SessionExpiryInterval: 3600,
		ReconnectBackoff:      autopaho.NewConstantBackoff(50 * time.Millisecond),
		ConnectTimeout:        5 * time.Second,
		ConnectUsername:       user,
		ConnectPassword:       []byte(b.Password(user)),
		ClientConfig: paho.ClientConfig{
			ClientID:          clientID,
			OnPublishReceived: handlers,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = cm.Disconnect(ctx)
		cancel()
	})
	actx, c := context.WithTimeout(t.Context(), 10*time.Second)
	defer c()
	if err := cm.AwaitConnection(actx); err != nil {
		t.Fatalf("device %s: not connected: %v", clientID, err)
	}
	return cm
}

// publishAll publishes messages 0..n-1 at QoS 1 with workers goroutines,
// retrying each until the broker acknowledges it (so a broker restart loses
// nothing on this side). every, when positive, paces the publishing.
func publishAll(ctx context.Context, cm *autopaho.ConnectionManager, n, workers int, every time.Duration, msg func(i int) (string, []byte)) error {
	next := make(chan int)
	go func() {
		defer close(next)
		var tick *time.Ticker
		if every > 0 {
			tick = time.NewTicker(every)
			defer tick.Stop()
		}
		for i := range n {
			if tick != nil {
				select {
				case <-tick.C:
				case <-ctx.Done():
					return
				}
			}
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for i := range next {
				topic, payload := msg(i)
				for {
					pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
					_, err := cm.Publish(pctx, &paho.Publish{QoS: 1, Topic: topic, Payload: payload})
					cancel()
					if err == nil {
						break
					}
					if ctx.Err() != nil {
						errs <- ctx.Err()
						return
					}
					var pr *paho.PublishResponse
					_ = pr
					if err := cm.AwaitConnection(ctx); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// counter consumes a Source like the pipeline does: it reads batches,
// records the sequence numbers and acknowledges each batch.
type counter struct {
	mu     sync.Mutex
	seen   map[int]int // seq → times received
	frames int
	ack    bool
	done   chan struct{}
	err    error
}

func consume(ctx context.Context, src *Source, ack bool) *counter {
	c := &counter{seen: map[int]int{}, ack: ack, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		var b pipeline.FrameBatch
		for {
			b.Reset()
			err := src.ReadBatch(ctx, &b, 256)
			c.mu.Lock()
			for i := range b.Frames {
				c.seen[seqOf(b.Payload(&b.Frames[i]))]++
				c.frames++
			}
			c.mu.Unlock()
			if c.ack && b.Ack != nil {
				b.Ack()
			}
			if err != nil {
				if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
					c.err = err
				}
				return
			}
		}
	}()
	return c
}

// unique reports how many distinct sequence numbers below n were seen.
func (c *counter) unique(n int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := 0
	for i := range n {
		if c.seen[i] > 0 {
			k++
		}
	}
	return k
}

func (c *counter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frames
}

// missing lists up to 10 sequence numbers below n not seen.
func (c *counter) missing(n int) []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var m []int
	for i := range n {
		if c.seen[i] == 0 && len(m) < 10 {
			m = append(m, i)
		}
	}
	return m
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
