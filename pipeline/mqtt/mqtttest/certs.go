package mqtttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certAuthority is a CA that can issue certificates.
type certAuthority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(name string) (*certAuthority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Vigil tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &certAuthority{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// issue returns the PEM certificate and key of a leaf signed by ca.
func (ca *certAuthority) issue(cn string, server bool) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"Vigil tests"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic("BUG: crypto/rand: " + err.Error())
	}
	return n
}

// Certs are the PEM files of a test PKI.
type Certs struct {
	CAFile         string // the CA that signed the broker's and the client's certificates
	ServerCertFile string // for 127.0.0.1, ::1 and localhost
	ServerKeyFile  string
	ClientCertFile string // CN "vigil", signed by CAFile
	ClientKeyFile  string
	// UntrustedCAFile is a CA that signed nothing the broker uses: a client
	// trusting only it rejects the broker.
	UntrustedCAFile string
	// UntrustedClientCertFile/KeyFile are signed by UntrustedCAFile: the
	// broker rejects them.
	UntrustedClientCertFile string
	UntrustedClientKeyFile  string
}

// writeCerts generates a PKI into dir.
func writeCerts(dir string) (Certs, error) {
	ca, err := newCA("Vigil Test CA")
	if err != nil {
		return Certs{}, err
	}
	other, err := newCA("Untrusted Test CA")
	if err != nil {
		return Certs{}, err
	}
	c := Certs{
		CAFile:                  filepath.Join(dir, "ca.crt"),
		ServerCertFile:          filepath.Join(dir, "server.crt"),
		ServerKeyFile:           filepath.Join(dir, "server.key"),
		ClientCertFile:          filepath.Join(dir, "client.crt"),
		ClientKeyFile:           filepath.Join(dir, "client.key"),
		UntrustedCAFile:         filepath.Join(dir, "untrusted-ca.crt"),
		UntrustedClientCertFile: filepath.Join(dir, "untrusted-client.crt"),
		UntrustedClientKeyFile:  filepath.Join(dir, "untrusted-client.key"),
	}
	files := map[string][]byte{c.CAFile: ca.pem, c.UntrustedCAFile: other.pem}
	for _, leaf := range []struct {
		ca        *certAuthority
		cn        string
		server    bool
		cert, key string
	}{
		{ca, "localhost", true, c.ServerCertFile, c.ServerKeyFile},
		{ca, "vigil", false, c.ClientCertFile, c.ClientKeyFile},
		{other, "intruder", false, c.UntrustedClientCertFile, c.UntrustedClientKeyFile},
	} {
		cp, kp, err := leaf.ca.issue(leaf.cn, leaf.server)
		if err != nil {
			return Certs{}, fmt.Errorf("issue %s: %w", leaf.cn, err)
		}
		files[leaf.cert], files[leaf.key] = cp, kp
	}
	for name, b := range files {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			return Certs{}, err
		}
	}
	return c, nil
}
