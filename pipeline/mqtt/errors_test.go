package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

func TestClassify(t *testing.T) {
	cfg := validConfig()
	connack := func(code byte) error {
		return autopaho.NewConnackError(errors.New("failed to connect to server: "), &paho.Connack{ReasonCode: code})
	}
	wrap := func(err error) error { return fmt.Errorf("failed to connect to mqtts://b:8883: %w", err) }
	remote := func(msg string) error { return &net.OpError{Op: "remote error", Err: errors.New(msg)} }
	tlsAt := attemptInfo{tls: true}
	tests := []struct {
		name      string
		err       error
		at        attemptInfo
		want      string
		permanent bool
	}{
		{"bad password", connack(0x86), tlsAt, "mqtt: broker refused the connection: bad user name or password (check username and password_file)", true},
		{"not authorized", connack(0x87), tlsAt, "broker refused the connection: not authorized (check username and password_file", true},
		{"client id", connack(0x85), tlsAt, `client identifier not valid (client_id "vigil-1" is not accepted`, true},
		{"server busy", connack(0x89), tlsAt, "server busy", false},
		{"unknown CA", wrap(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), tlsAt, "TLS: broker certificate not trusted", true},
		{"hostname", wrap(&tls.CertificateVerificationError{Err: x509.HostnameError{Certificate: &x509.Certificate{}, Host: "x"}}), tlsAt, "does not match", true},
		{"cert required", wrap(remote("tls: certificate required")), attemptInfo{tls: true, certRequested: true}, "broker requires a client certificate: remote error: tls: certificate required (set tls.cert_file and tls.key_file)", true},
		{"cert required, reset", wrap(syscall.ECONNRESET), attemptInfo{tls: true, certRequested: true, handshakeDone: true}, "broker requires a client certificate", true},
		{"cert rejected", wrap(remote("tls: unknown certificate authority")), attemptInfo{tls: true, haveCert: true, certRequested: true}, "broker rejected the handshake", true},
		{"not TLS", wrap(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), tlsAt, "did not answer with TLS", true},
		{"password file", wrap(configError{errors.New("password_file: open /x: no such file or directory")}), tlsAt, "mqtt: configuration: password_file: open /x", true},
		{"refused", wrap(&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}), tlsAt, "cannot reach broker", false},
		{"eof", wrap(io.EOF), tlsAt, "broker closed the connection", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ce := classify(tc.err, &cfg, "mqtts://b:8883", tc.at)
			if !strings.Contains(ce.Error(), tc.want) {
				t.Errorf("got %q; want it to contain %q", ce.Error(), tc.want)
			}
			if ce.Permanent != tc.permanent {
				t.Errorf("permanent = %v; want %v", ce.Permanent, tc.permanent)
			}
			if strings.Contains(ce.Error(), "failed to connect to") {
				t.Errorf("got %q; autopaho's prefix should be dropped", ce.Error())
			}
			if !errors.Is(ce, tc.err) && !errors.Is(tc.err, errors.Unwrap(ce)) {
				t.Errorf("the cause is not wrapped: %v", ce)
			}
		})
	}
}

func TestDisconnectReason(t *testing.T) {
	got := disconnectReason(&paho.Disconnect{ReasonCode: 0x8E})
	if !strings.Contains(got, "session taken over") || !strings.Contains(got, "same client_id") {
		t.Errorf("got %q", got)
	}
}
