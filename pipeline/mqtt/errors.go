package mqtt

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strings"
	"syscall"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// ErrClosed is returned by operations on a closed Source or Publisher.
var ErrClosed = errors.New("mqtt: closed")

// ConnectError explains why a connection attempt failed, in terms of the
// configuration keys to check. Start returns it when the first connection
// fails for a reason that retrying cannot fix (Permanent).
type ConnectError struct {
	Broker string // scheme://host:port
	// Reason is a short description: "broker refused the connection: bad
	// user name or password", "TLS: broker certificate not trusted"…
	Reason string
	// Hint names what to check, e.g. "check username and password_file".
	Hint string
	// Code is the CONNACK (or SUBACK) reason code when the broker refused
	// the connection (or a subscription), else 0.
	Code byte
	// Permanent reports a configuration or credential problem: retrying
	// with the same settings will fail again.
	Permanent bool
	Err       error // the underlying error

	handshakeClosed bool // closed during the TLS handshake: permanent if it keeps happening
}

func (e *ConnectError) Error() string {
	s := "mqtt: " + e.Reason
	if e.Err != nil && e.Code == 0 {
		s += ": " + e.Err.Error()
	}
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

func (e *ConnectError) Unwrap() error { return e.Err }

// refused reports whether the broker answered and said no (a CONNACK
// reason code) or the configuration is at fault: retries back off up to
// Backoff.Max. Anything else means the broker could not be reached.
func (e *ConnectError) refused() bool { return e.Code != 0 || e.Permanent }

// attemptInfo describes one connection attempt, for classifying its failure.
type attemptInfo struct {
	tls           bool
	haveCert      bool
	certRequested bool // the broker asked for a client certificate
	handshakeDone bool
}

// classify turns an autopaho connection error into a ConnectError.
func classify(err error, cfg *Config, origin string, at attemptInfo) *ConnectError {
	if inner := errors.Unwrap(err); inner != nil && strings.HasPrefix(err.Error(), "failed to connect to ") {
		err = inner // autopaho's wrapping only repeats the URL
	}
	ce := &ConnectError{Broker: origin, Err: err}
	var (
		connack  *autopaho.ConnackError
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		rec      tls.RecordHeaderError
		opErr    *net.OpError
		pathErr  *fs.PathError
	)
	switch {
	case errors.As(err, &connack):
		ce.Code = connack.ReasonCode
		ce.Reason = "broker refused the connection: " + connackReason(connack.ReasonCode)
		ce.Permanent = true
		switch connack.ReasonCode {
		case 0x86: // bad user name or password
			ce.Hint = "check username and " + passwordKey(cfg)
		case 0x87: // not authorized; Mosquitto also answers a wrong password so
			ce.Hint = "check username and " + passwordKey(cfg) + ", then client_id and the broker's allowed client IDs"
		case 0x85: // client identifier not valid
			ce.Hint = fmt.Sprintf("client_id %q is not accepted by the broker", cfg.ClientID)
		case 0x84:
			ce.Hint = "the broker must support MQTT 5"
		case 0x8A, 0x8C:
			ce.Hint = "ask the broker's administrator"
		default:
			ce.Permanent = false // server unavailable, busy, quota, rate limits…
		}
		if connack.Reason != "" {
			ce.Reason += ": " + connack.Reason
		}
	case errors.As(err, &unknown) || (errors.As(err, &verify) && errors.As(verify.Err, &unknown)):
		ce.Reason, ce.Hint, ce.Permanent = "TLS: broker certificate not trusted", "check tls.ca_file", true
	case errors.As(err, &hostname):
		ce.Reason, ce.Hint, ce.Permanent = "TLS: broker certificate does not match the host",
			"check the broker URL or tls.server_name", true
	case errors.As(err, &invalid) || errors.As(err, &verify):
		ce.Reason, ce.Hint, ce.Permanent = "TLS: broker certificate invalid", "check the broker certificate and tls.ca_file", true
	case errors.As(err, &rec):
		ce.Reason, ce.Hint, ce.Permanent = "TLS handshake failed: the broker did not answer with TLS",
			"is this a plaintext port? use mqtt:// or the broker's TLS port", true
	case at.tls && !at.haveCert && at.certRequested:
		// The broker asked for a client certificate and we had none: the
		// rejection shows up as an alert, EOF or reset depending on timing.
		ce.Reason, ce.Hint, ce.Permanent = "TLS: broker requires a client certificate",
			"set tls.cert_file and tls.key_file", true
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		ce.Reason, ce.Permanent = "TLS: broker rejected the handshake", true
		if at.haveCert {
			ce.Hint = "check that tls.cert_file is signed by a CA the broker trusts, and tls.min_version"
		} else {
			ce.Hint = "check tls.min_version; the broker may require a client certificate (tls.cert_file)"
		}
	case isConfigError(err) || errors.As(err, &pathErr):
		ce.Reason, ce.Permanent = "configuration", true
	case errors.Is(err, syscall.ECONNREFUSED):
		ce.Reason, ce.Hint = "cannot reach broker", "is it running and listening on "+origin+"?"
	case at.tls && !at.handshakeDone && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)):
		ce.Reason = "TLS handshake failed: the broker closed the connection"
		ce.Hint = "is " + origin + " a TLS listener? a plaintext one closes TLS handshakes this way"
		ce.handshakeClosed = true
	case errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET):
		ce.Reason = "broker closed the connection"
		if at.tls && at.handshakeDone && at.haveCert {
			ce.Hint = "the broker may not accept the client certificate"
		}
	default:
		ce.Reason = "cannot connect"
	}
	return ce
}

// configError marks errors from reading the configured files and variables.
type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }

func isConfigError(err error) bool {
	var ce configError
	return errors.As(err, &ce)
}

func passwordKey(cfg *Config) string {
	switch {
	case cfg.PasswordFile != "":
		return "password_file"
	case cfg.PasswordEnv != "":
		return "password_env"
	}
	return "the password (none configured: set password_file or password_env)"
}

// connackReason names a CONNACK (or DISCONNECT) reason code.
func connackReason(code byte) string {
	switch code {
	case 0x80:
		return "unspecified error"
	case 0x81:
		return "malformed packet"
	case 0x82:
		return "protocol error"
	case 0x83:
		return "implementation specific error"
	case 0x84:
		return "unsupported protocol version"
	case 0x85:
		return "client identifier not valid"
	case 0x86:
		return "bad user name or password"
	case 0x87:
		return "not authorized"
	case 0x88:
		return "server unavailable"
	case 0x89:
		return "server busy"
	case 0x8A:
		return "banned"
	case 0x8B:
		return "server shutting down"
	case 0x8C:
		return "bad authentication method"
	case 0x8D:
		return "keep alive timeout"
	case 0x8E:
		return "session taken over"
	case 0x90:
		return "topic name invalid"
	case 0x93:
		return "receive maximum exceeded"
	case 0x95:
		return "packet too large"
	case 0x97:
		return "quota exceeded"
	case 0x98:
		return "administrative action"
	case 0x9C:
		return "use another server"
	case 0x9D:
		return "server moved"
	case 0x9F:
		return "connection rate exceeded"
	}
	return fmt.Sprintf("reason code 0x%02x", code)
}

// disconnectReason describes a DISCONNECT sent by the broker.
func disconnectReason(d *paho.Disconnect) string {
	s := "broker sent DISCONNECT: " + connackReason(d.ReasonCode)
	if d.ReasonCode == 0 {
		s = "broker sent DISCONNECT"
	}
	if d.Properties != nil && d.Properties.ReasonString != "" {
		s += ": " + d.Properties.ReasonString
	}
	if d.ReasonCode == 0x8E {
		s += " (another client connected with the same client_id)"
	}
	return s
}
