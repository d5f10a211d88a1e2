package nats

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	natsclient "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-iot/vigil/pipeline"
)

// startServer runs a real nats-server with JetStream on a free loopback port.
// Without the binary the test skips, unless CI=true.
func startServer(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nats-server"); serr == nil {
			bin = "/usr/sbin/nats-server"
		} else if os.Getenv("CI") == "true" {
			t.Fatal("nats-server is required in CI (.ci/run installs it)")
		} else {
			t.Skip("nats-server not installed")
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nats-server did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "nats://" + addr
}

func alerts(n int) []pipeline.Alert {
	as := make([]pipeline.Alert, n)
	for i := range as {
		as[i] = pipeline.Alert{
			ID: fmt.Sprintf("id%03d", i), Time: int64(i+1) * 1e9, Started: int64(i+1) * 1e9,
			Device: "line.a pump*" + strconv.Itoa(i%3), Kind: "overpressure", Detector: "overpressure.spike",
			Severity: pipeline.Critical, State: pipeline.Firing, Signal: "pressure", Value: 6.3, Threshold: 4.6,
			Message: "pressure is high",
		}
	}
	return as
}

// TestCorePublish: alerts arrive on sanitised subjects with their headers and
// JSON body.
func TestCorePublish(t *testing.T) {
	url := startServer(t)
	sub, err := natsclient.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch := make(chan *natsclient.Msg, 10)
	if _, err := sub.ChanSubscribe("vigil.alerts.>", ch); err != nil {
		t.Fatal(err)
	}
	sub.Flush()
	p, err := NewPublisher(Config{URL: url}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Write(context.Background(), alerts(3)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		select {
		case m := <-ch:
			want := fmt.Sprintf("vigil.alerts.overpressure.line_a_pump_%d", i)
			if m.Subject != want {
				t.Errorf("subject %q; want %q (device name sanitised into one token)", m.Subject, want)
			}
			if m.Header.Get("Vigil-Severity") != "critical" || m.Header.Get("Content-Type") != "application/json" || m.Header.Get("Vigil-Kind") != "overpressure" {
				t.Errorf("headers %v", m.Header)
			}
			var a pipeline.Alert
			if err := json.Unmarshal(m.Data, &a); err != nil || a.ID != fmt.Sprintf("id%03d", i) {
				t.Errorf("body %s: %v", m.Data, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("received %d of 3 alerts", i)
		}
	}
}

// TestJetStreamPublish: with JetStream every alert is stored before Write
// returns, and a retried batch is not stored twice.
func TestJetStreamPublish(t *testing.T) {
	url := startServer(t)
	nc, err := natsclient.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "VIGIL_ALERTS", Subjects: []string{"vigil.alerts.>"}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPublisher(Config{URL: url, JetStream: true}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	batch := alerts(200)
	if err := p.Write(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := p.Write(ctx, batch); err != nil { // a retry after an unknown outcome
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 200 {
		t.Errorf("stream holds %d messages; want 200 (stored once each, the retry deduplicated)", info.State.Msgs)
	}
}

// TestJetStreamWithoutStream: publishing to subjects no stream captures is an
// error, not a silent loss.
func TestJetStreamWithoutStream(t *testing.T) {
	url := startServer(t)
	p, err := NewPublisher(Config{URL: url, JetStream: true, Timeout: 2 * time.Second}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = p.Write(t.Context(), alerts(2))
	if err == nil || !strings.Contains(err.Error(), "stored 0 of 2") {
		t.Errorf("Write without a stream = %v; want an error saying none was stored", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{URL: "nats://10.1.2.3:4222"}, "plaintext nats:// to 10.1.2.3 is refused"},
		{Config{URL: "http://x:1"}, `scheme "http"`},
		{Config{URL: "::"}, "url"},
		{Config{URL: "tls://x:1", CertFile: "c"}, "cert_file and key_file"},
		{Config{URL: "tls://x:1", Subject: "vigil.{nope}"}, "unknown placeholder {nope}"},
		{Config{URL: "tls://x:1", Subject: "vigil.*.{kind}"}, "wildcards"},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v; want %q", tc.cfg, err, tc.want)
		}
	}
	if err := (&Config{URL: "nats://10.1.2.3:4222", AllowPlaintext: true}).Validate(); err != nil {
		t.Errorf("allow_plaintext: %v", err)
	}
}

// TestConfigErrorsMaskCredentials: a URL with credentials, parsable or
// not, is refused pointing to creds_file, and no error repeats the secret.
func TestConfigErrorsMaskCredentials(t *testing.T) {
	const secret = "s3cret-pw"
	for _, tc := range []struct{ url, want string }{
		{"tls://vigil:" + secret + "@nats.invalid:4222", `url: credentials must not be part of the URL ("tls://vigil:xxxxx@nats.invalid:4222")`},
		{"nats://vigil:" + secret + "@nats.invalid:port", `url: credentials must not be part of the URL ("nats://vigil:xxxxx@nats.invalid:port")`},
		{"nats://vigil:p@" + secret + "@host:port/%zz", `url: credentials must not be part of the URL ("nats://vigil:xxxxx@host:port/%zz")`},
		{"tls://" + secret + "@nats.invalid:4222", `url: credentials must not be part of the URL ("tls://xxxxx@nats.invalid:4222")`},
		{"tls://a:4222,tls://vigil:" + secret + "@b:4222", `("tls://a:4222,tls://vigil:xxxxx@b:4222")`},
		{"tls://nats.invalid:4222/%zz?token=" + secret, `got "tls://nats.invalid:4222/%zz?token=xxxxx"`},
	} {
		cfg := Config{URL: tc.url}
		for _, err := range []error{cfg.Validate(), second(NewPublisher(cfg, nil, nil))} {
			if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("url %q: got %v; want an error containing %q, without the secret", tc.url, err, tc.want)
			}
		}
		if err := cfg.Validate(); strings.Contains(tc.want, "credentials") && (err == nil || !strings.Contains(err.Error(), "creds_file")) {
			t.Errorf("url %q: got %v; want it to point to creds_file", tc.url, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// TestUnreachableFailsFast: no server, a clear error at start-up.
func TestUnreachableFailsFast(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	start := time.Now()
	_, err := NewPublisher(Config{URL: "nats://" + addr, Timeout: time.Second}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "nats: connect to nats://"+addr) {
		t.Fatalf("NewPublisher = %v; want a connect error naming the server", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("took too long to fail")
	}
}
