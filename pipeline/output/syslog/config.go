package syslog

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-iot/vigil/internal/redact"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// Networks.
const (
	NetworkTLS = "tls" // RFC 5425: TCP with TLS, octet counting (default)
	NetworkTCP = "tcp" // RFC 6587: plain TCP (historic; loopback or allow_plaintext)
	NetworkUDP = "udp" // RFC 5426: one message per datagram (loopback or allow_plaintext)
)

// Framings of a stream (tcp, tls).
const (
	// FramingOctetCounting prefixes each message with its length in octets
	// and a space (RFC 6587 §3.4.1, the only framing of RFC 5425). Messages
	// may contain any octet, line feeds included.
	FramingOctetCounting = "octet-counting"
	// FramingNonTransparent ends each message with a line feed (RFC 6587
	// §3.4.2), what many legacy receivers expect on plain TCP. A line feed
	// inside a message would split it, so each is replaced by a space.
	FramingNonTransparent = "non-transparent"
)

// Defaults.
const (
	DefaultFacility   = "local0"
	DefaultAppName    = "vigil"
	DefaultSDID       = "vigil@32473"
	DefaultTimeout    = 10 * time.Second
	DefaultMaxMessage = 8192 // RFC 5425 §4.3.1: receivers SHOULD accept 8192 octets
	// DefaultMaxMessageUDP keeps a datagram within what RFC 5426 §3.2 says
	// receivers SHOULD accept (2048 octets).
	DefaultMaxMessageUDP = 2048
	// MinMaxMessage is the smallest max_message accepted: every receiver
	// MUST accept 480 octets (RFC 5424 §6.1).
	MinMaxMessage = 480
	maxMaxMessage = 1 << 20
	maxUDPPayload = 65507
)

// Config configures a syslog output. Zero fields take their defaults.
type Config struct {
	// Address is the receiver, host:port. Without a port, 6514 is used for
	// tls and 514 for tcp and udp.
	Address string `yaml:"address"`
	// Network is tls (default, RFC 5425), tcp (RFC 6587) or udp (RFC 5426).
	Network string `yaml:"network"`
	// Framing is octet-counting (default; the only framing allowed over
	// tls) or non-transparent (tcp only). Not used with udp.
	Framing string `yaml:"framing"`
	// TLS configures the TLS client (network tls): CA, client certificate
	// for mutual TLS, server name, minimum version.
	TLS output.TLS `yaml:"tls"`
	// Facility is the facility name: kern, user, mail, daemon, auth,
	// syslog, lpr, news, uucp, cron, authpriv, ftp, ntp, security or
	// log_audit (13), console or log_alert (14), clock (15), local0 to
	// local7 (default local0).
	Facility string `yaml:"facility"`
	// AppName is the APP-NAME header field (default "vigil").
	AppName string `yaml:"app_name"`
	// Hostname is the HOSTNAME header field (default: output.Meta.Hostname).
	Hostname string `yaml:"hostname"`
	// MsgID chooses the MSGID header field of each alert: the value of the
	// alert's kind (default), detector, state, severity or signal, or none
	// for the NILVALUE.
	MsgID string `yaml:"msg_id"`
	// SDID is the SD-ID of the structured data element, name@PEN (default
	// vigil@32473). 32473 is the private enterprise number reserved for
	// documentation by RFC 5612; a plant with its own IANA private
	// enterprise number should use it, so that its collectors can tell
	// Vigil's parameters from anyone else's.
	SDID string `yaml:"sd_id"`
	// StructuredData writes the structured data element (default on).
	StructuredData *bool `yaml:"structured_data"`
	// Timeout bounds dialling (TCP and TLS handshake) and each Write
	// (default 10s). The caller's context may end either earlier.
	Timeout time.Duration `yaml:"timeout"`
	// AllowPlaintext permits tcp and udp to a host that is not loopback.
	// Without it such a configuration is refused: alerts would cross the
	// network readable and forgeable by anyone on the path.
	AllowPlaintext bool `yaml:"allow_plaintext"`
	// MaxMessage is the largest SYSLOG-MSG in octets, framing excluded
	// (default 8192, 2048 for udp; at least 480). A longer message has its
	// MSG truncated at a UTF-8 boundary, and is counted (Output.Truncated);
	// a structured data element that alone would not fit is replaced by
	// the NILVALUE. The receiver's own limit must be as large (rsyslog:
	// global maxMessageSize, 8k by default).
	MaxMessage int `yaml:"max_message"`
}

// facilities maps the facility names to their codes (RFC 5424 §6.2.1).
// "security" is the name the RFC table's "log audit" (13) commonly goes by
// in SIEM configurations; note that glibc's syslog.h uses "security" as a
// deprecated alias of auth (4) instead, so a receiver's filter named
// "security.*" may mean 4.
var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5,
	"lpr": 6, "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
	"ntp": 12, "security": 13, "log_audit": 13, "console": 14, "log_alert": 14,
	"clock": 15, "local0": 16, "local1": 17, "local2": 18, "local3": 19,
	"local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// msgIDFields are the alert fields MsgID may name.
var msgIDFields = []string{"kind", "detector", "state", "severity", "signal", "none"}

// withDefaults returns c with the zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Network == "" {
		c.Network = NetworkTLS
	}
	if c.Framing == "" && c.Network != NetworkUDP {
		c.Framing = FramingOctetCounting
	}
	if c.Facility == "" {
		c.Facility = DefaultFacility
	}
	if c.AppName == "" {
		c.AppName = DefaultAppName
	}
	if c.MsgID == "" {
		c.MsgID = "kind"
	}
	if c.SDID == "" {
		c.SDID = DefaultSDID
	}
	if c.StructuredData == nil {
		on := true
		c.StructuredData = &on
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxMessage == 0 {
		c.MaxMessage = DefaultMaxMessage
		if c.Network == NetworkUDP {
			c.MaxMessage = DefaultMaxMessageUDP
		}
	}
	return c
}

// Validate checks the configuration (the zero fields standing for their
// defaults) without reading files or resolving names; errors name the key.
func (c *Config) Validate() error {
	d := c.withDefaults()
	switch d.Network {
	case NetworkTLS, NetworkTCP, NetworkUDP:
	default:
		return fmt.Errorf("network: %q: want tls, tcp or udp", c.Network)
	}
	host, _, err := splitAddress(d.Address, d.Network)
	if err != nil {
		return fmt.Errorf("address: %w", err)
	}
	if d.Network != NetworkTLS && !d.AllowPlaintext && !loopback(host) {
		return fmt.Errorf("network: plaintext %s to %s is refused; use tls or set allow_plaintext", d.Network, host)
	}
	switch {
	case d.Network == NetworkUDP && c.Framing != "":
		return errors.New("framing: not used with udp (one message per datagram)")
	case d.Network == NetworkTLS && d.Framing != FramingOctetCounting:
		return fmt.Errorf("framing: %q: tls carries octet-counting framing only (RFC 5425)", c.Framing)
	case d.Network == NetworkTCP && d.Framing != FramingOctetCounting && d.Framing != FramingNonTransparent:
		return fmt.Errorf("framing: %q: want octet-counting or non-transparent", c.Framing)
	}
	if d.Network == NetworkTLS {
		if err := d.TLS.Validate(); err != nil {
			return err // already named tls.…
		}
	} else if d.TLS != (output.TLS{}) {
		return fmt.Errorf("tls: set, but network is %s", d.Network)
	}
	if _, ok := facilities[d.Facility]; !ok {
		return fmt.Errorf("facility: unknown %q (want e.g. local0…local7, user, auth, authpriv, security)", c.Facility)
	}
	if err := checkHeaderValue(d.AppName, 48); err != nil {
		return fmt.Errorf("app_name: %w", err)
	}
	if c.Hostname != "" {
		if err := checkHeaderValue(c.Hostname, 255); err != nil {
			return fmt.Errorf("hostname: %w", err)
		}
	}
	if !slices.Contains(msgIDFields, d.MsgID) {
		return fmt.Errorf("msg_id: %q: want one of %s", c.MsgID, strings.Join(msgIDFields, ", "))
	}
	if err := checkSDID(d.SDID); err != nil {
		return fmt.Errorf("sd_id: %w", err)
	}
	if d.Timeout < 0 {
		return errors.New("timeout: must not be negative")
	}
	limit := maxMaxMessage
	if d.Network == NetworkUDP {
		limit = maxUDPPayload
	}
	if d.MaxMessage < MinMaxMessage || d.MaxMessage > limit {
		return fmt.Errorf("max_message: %d: want %d to %d", c.MaxMessage, MinMaxMessage, limit)
	}
	return nil
}

// splitAddress returns the host and port of address, with the network's
// default port when it has none. Its errors show the address through
// redact.URL, and refuse user information in it: syslog has no
// credentials, and a user:password@ written there must not be echoed.
func splitAddress(address, network string) (host, port string, err error) {
	if address == "" {
		return "", "", errors.New("required (host:port)")
	}
	if strings.Contains(address, "@") {
		return "", "", fmt.Errorf("%q: credentials must not be part of the address (syslog takes none; authenticate with a client certificate: tls.cert_file and tls.key_file)", redact.URL(address))
	}
	host, port, err = net.SplitHostPort(address)
	if err != nil {
		// No port: a name, an IPv4 address, or an IPv6 address with or
		// without brackets.
		host = strings.TrimSuffix(strings.TrimPrefix(address, "["), "]")
		port = "514"
		if network == NetworkTLS {
			port = "6514"
		}
		if strings.ContainsAny(host, "[]") || (strings.Contains(host, ":") && net.ParseIP(host) == nil) {
			return "", "", fmt.Errorf("%q: want host:port", redact.URL(address))
		}
	}
	if host == "" {
		return "", "", fmt.Errorf("%q: no host", redact.URL(address))
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("%q: bad port (want 1 to 65535)", redact.URL(address))
	}
	return host, port, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// checkHeaderValue checks a configured header field: 1 to max
// PRINTUSASCII characters (RFC 5424 §6).
func checkHeaderValue(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%q is longer than %d characters", s, max)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return fmt.Errorf("%q: only printable US-ASCII, no spaces", s)
		}
	}
	return nil
}

// checkSDID checks a private SD-ID: an SD-NAME (1 to 32 PRINTUSASCII
// except '=', ' ', ']' and '"') of the form name@digits (RFC 5424 §6.3.2;
// the names without '@' are reserved for IANA).
func checkSDID(s string) error {
	if err := checkSDName(s); err != nil {
		return err
	}
	name, pen, ok := strings.Cut(s, "@")
	if !ok || name == "" || pen == "" || strings.Trim(pen, "0123456789.") != "" || pen[0] < '1' || pen[0] > '9' {
		return fmt.Errorf("%q: want name@<private enterprise number>, e.g. vigil@32473", s)
	}
	return nil
}

// checkSDName checks an SD-NAME (RFC 5424 §6.3.2).
func checkSDName(s string) error {
	if s == "" || len(s) > 32 {
		return fmt.Errorf("%q: want 1 to 32 characters", s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 33 || c > 126 || c == '=' || c == ']' || c == '"' {
			return fmt.Errorf("%q: only printable US-ASCII other than '=', ']' and '\"'", s)
		}
	}
	return nil
}
