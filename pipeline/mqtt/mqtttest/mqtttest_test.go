package mqtttest_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/vigil-iot/vigil/pipeline/mqtt/mqtttest"
)

// TestBroker starts a broker, checks its TLS listener with the generated PKI
// and its hardened configuration, and restarts it on the same port.
func TestBroker(t *testing.T) {
	if testing.Short() {
		t.Skip("broker test: skipped with -short")
	}
	b := mqtttest.Start(t, mqtttest.Options{RequireClientCert: true, Plaintext: true})
	handshake := func() error {
		pem, err := os.ReadFile(b.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		cert, err := tls.LoadX509KeyPair(b.ClientCertFile, b.ClientKeyFile)
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.Dial("tcp", strings.TrimPrefix(b.URL(), "mqtts://"), &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "localhost"})
		if err != nil {
			return err
		}
		return c.Close()
	}
	if err := handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	conf, err := os.ReadFile(b.Dir() + "/mosquitto.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"allow_anonymous false", "per_listener_settings false", "set_tcp_nodelay true",
		"max_queued_messages 100000", "persistence true", "require_certificate true", "listener " + strings.TrimPrefix(b.PlainURL(), "mqtt://127.0.0.1:") + " 127.0.0.1"} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("mosquitto.conf lacks %q", want)
		}
	}
	if pw, err := os.ReadFile(b.PasswordFile("vigil")); err != nil || string(pw) != b.Password("vigil")+"\n" {
		t.Errorf("password file %q, %v", pw, err)
	}

	b.Kill()
	if _, err := net.Dial("tcp", strings.TrimPrefix(b.URL(), "mqtts://")); err == nil {
		t.Fatal("port still open after Kill")
	}
	b.Restart()
	if err := handshake(); err != nil {
		t.Fatalf("TLS handshake after restart: %v", err)
	}
	b.Stop()
	if !strings.Contains(b.Log(), "Saving in-memory database") {
		t.Error("Stop did not let the broker save its state")
	}
}
