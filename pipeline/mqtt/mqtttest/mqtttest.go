// Package mqtttest runs a real, hardened Mosquitto broker for tests: TLS on a
// free loopback port with a generated PKI, password authentication, an ACL,
// anonymous access off, persistence in the test's temporary directory, and
// Nagle off. Tests that need it call Start; without a mosquitto binary they
// are skipped, except in CI (CI=true), where that is a failure.
//
// The broker knows three users (see Users): "vigil" may read plant/# and
// write vigil/#, "device" may write plant/#, and "dash" may read vigil/#.
//
// The package's own tests also start Mosquitto with every configuration the
// documents recommend (fenced ```mosquitto blocks), so that a setting the
// broker refuses cannot stay in them.
package mqtttest

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Users are the broker's users.
var Users = []string{"vigil", "device", "dash"}

const acl = `# Vigil reads telemetry and writes alerts.
user vigil
topic read plant/#
topic write vigil/#

# Devices write telemetry.
user device
topic write plant/#

# Dashboards read alerts and state.
user dash
topic read vigil/#
`

// Options configures a test broker.
type Options struct {
	// RequireClientCert makes the TLS listener require a client certificate
	// signed by the test CA (require_certificate true).
	RequireClientCert bool
	// Plaintext adds a plaintext listener on another loopback port
	// (PlainURL), with the same authentication.
	Plaintext bool
	// AutosaveOnChanges, when positive, saves the persistence file after
	// that many changes (subscriptions, retained and queued messages)
	// instead of every 30 minutes, so a broker killed with SIGKILL loses
	// little. Saving costs throughput.
	AutosaveOnChanges int
	// Extra is appended to mosquitto.conf (global options only).
	Extra []string
}

// Broker is a running Mosquitto.
type Broker struct {
	Certs
	t         testing.TB
	bin       string
	dir       string
	conf      string
	logPath   string
	port      int
	plainPort int
	passwords map[string]string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Require returns the path of the mosquitto binary. Without one it skips the
// test, or fails it when the environment variable CI is "true".
func Require(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("mosquitto not found on PATH or in /usr/sbin (CI=true: install mosquitto)")
	}
	t.Skip("mosquitto not found on PATH or in /usr/sbin; skipping broker test")
	return ""
}

func passwdTool(bin string) (string, error) {
	if p, err := exec.LookPath("mosquitto_passwd"); err == nil {
		return p, nil
	}
	for _, p := range []string{filepath.Join(filepath.Dir(bin), "mosquitto_passwd"), "/usr/bin/mosquitto_passwd"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("mosquitto_passwd not found")
}

// Start writes the configuration, PKI, password and ACL files into
// t.TempDir(), starts Mosquitto, and returns once its ports accept
// connections. The broker is stopped when the test ends, and its log is
// printed if the test failed.
func Start(t testing.TB, opts Options) *Broker {
	t.Helper()
	bin := Require(t)
	dir := t.TempDir()
	b := &Broker{t: t, bin: bin, dir: dir, conf: filepath.Join(dir, "mosquitto.conf"),
		logPath: filepath.Join(dir, "mosquitto.log"), passwords: map[string]string{}}
	var err error
	if b.Certs, err = writeCerts(dir); err != nil {
		t.Fatalf("mqtttest: certificates: %v", err)
	}
	if err := b.writeUsers(); err != nil {
		t.Fatalf("mqtttest: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "acl"), []byte(acl), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.Stop()
		if t.Failed() {
			t.Logf("mosquitto log (%s):\n%s", b.logPath, b.Log())
		}
	})
	// A free port can be taken between choosing and binding it: retry.
	for try := 0; ; try++ {
		b.port, b.plainPort = freePort(t), 0
		if opts.Plaintext {
			b.plainPort = freePort(t)
		}
		if err := os.WriteFile(b.conf, []byte(b.config(opts)), 0o600); err != nil {
			t.Fatal(err)
		}
		err := b.start()
		if err == nil {
			return b
		}
		if try == 2 || !strings.Contains(b.Log(), "in use") {
			t.Fatalf("mqtttest: %v\n%s", err, b.Log())
		}
	}
}

func (b *Broker) writeUsers() error {
	tool, err := passwdTool(b.bin)
	if err != nil {
		return err
	}
	file := filepath.Join(b.dir, "passwd")
	for i, u := range Users {
		pw := randomHex(12)
		b.passwords[u] = pw
		args := []string{"-b", file, u, pw}
		if i == 0 {
			args = []string{"-b", "-c", file, u, pw}
		}
		if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("mosquitto_passwd: %v: %s", err, out)
		}
		if err := os.WriteFile(filepath.Join(b.dir, u+".password"), []byte(pw+"\n"), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (b *Broker) config(opts Options) string {
	var w strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&w, format+"\n", args...) }
	line("# Generated by mqtttest for %s", b.t.Name())
	line("per_listener_settings false")
	line("allow_anonymous false")
	line("password_file %s", filepath.Join(b.dir, "passwd"))
	line("acl_file %s", filepath.Join(b.dir, "acl"))
	line("set_tcp_nodelay true")
	line("max_queued_messages 100000")
	// No broker-wide cap on messages in flight to a client: MQTT 5 clients
	// set their own with Receive Maximum; this also lets publishers have
	// many QoS 1 messages in flight (the broker's Receive Maximum).
	line("max_inflight_messages 0")
	line("persistence true")
	line("persistence_location %s/", filepath.Join(b.dir, "data"))
	if opts.AutosaveOnChanges > 0 {
		line("autosave_on_changes true")
		line("autosave_interval %d", opts.AutosaveOnChanges)
	}
	line("log_dest stderr")
	line("log_type error")
	line("log_type warning")
	line("log_type notice")
	line("log_type information")
	line("log_timestamp_format %%H:%%M:%%S")
	if os.Geteuid() == 0 {
		line("user root") // the files are in a 0700 directory owned by root
	}
	for _, e := range opts.Extra {
		line("%s", e)
	}
	line("")
	line("listener %d 127.0.0.1", b.port)
	line("cafile %s", b.CAFile)
	line("certfile %s", b.ServerCertFile)
	line("keyfile %s", b.ServerKeyFile)
	line("require_certificate %t", opts.RequireClientCert)
	if b.plainPort != 0 {
		line("")
		line("listener %d 127.0.0.1", b.plainPort)
	}
	return w.String()
}

// start launches mosquitto and waits for its ports.
func (b *Broker) start() error {
	logf, err := os.OpenFile(b.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(b.bin, "-c", b.conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start mosquitto: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	b.mu.Lock()
	b.cmd, b.exited = cmd, exited
	b.mu.Unlock()

	deadline := time.Now().Add(10 * time.Second)
	for _, port := range []int{b.port, b.plainPort} {
		if port == 0 {
			continue
		}
		for {
			c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				return fmt.Errorf("mosquitto exited during startup (%v)", cmd.ProcessState)
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				b.signal(syscall.SIGKILL)
				return fmt.Errorf("mosquitto did not listen on port %d within 10s", port)
			}
		}
	}
	return nil
}

func (b *Broker) signal(sig syscall.Signal) (exited chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return nil
	}
	_ = b.cmd.Process.Signal(sig)
	return b.exited
}

// Stop terminates the broker (SIGTERM, which saves the persistence file) and
// waits for it to exit; after 10 s it is killed.
func (b *Broker) Stop() {
	ex := b.signal(syscall.SIGTERM)
	if ex == nil {
		return
	}
	select {
	case <-ex:
	case <-time.After(10 * time.Second):
		b.signal(syscall.SIGKILL)
		<-ex
	}
	b.mu.Lock()
	b.cmd = nil
	b.mu.Unlock()
}

// Kill kills the broker with SIGKILL, as a crash would (state since the last
// save is lost), and waits for it to exit.
func (b *Broker) Kill() {
	ex := b.signal(syscall.SIGKILL)
	if ex == nil {
		return
	}
	<-ex
	b.mu.Lock()
	b.cmd = nil
	b.mu.Unlock()
}

// Restart starts the broker again with the same ports, configuration and
// persistence, stopping it first if it is running.
func (b *Broker) Restart() {
	b.t.Helper()
	b.Stop()
	var err error
	for try := 0; try < 50; try++ { // the port may linger briefly
		if err = b.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("mqtttest: restart: %v\n%s", err, b.Log())
}

// URL is the TLS listener's URL, mqtts://127.0.0.1:port.
func (b *Broker) URL() string { return "mqtts://127.0.0.1:" + strconv.Itoa(b.port) }

// PlainURL is the plaintext listener's URL (Options.Plaintext), or "".
func (b *Broker) PlainURL() string {
	if b.plainPort == 0 {
		return ""
	}
	return "mqtt://127.0.0.1:" + strconv.Itoa(b.plainPort)
}

// Password returns a user's password.
func (b *Broker) Password(user string) string { return b.passwords[user] }

// PasswordFile returns the path of a file holding a user's password followed
// by a newline.
func (b *Broker) PasswordFile(user string) string {
	return filepath.Join(b.dir, user+".password")
}

// Dir is the broker's directory (configuration, PKI, persistence, log).
func (b *Broker) Dir() string { return b.dir }

// Log returns the broker's log so far (the last 200 lines).
func (b *Broker) Log() string {
	f, err := os.Open(b.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 400 {
			lines = lines[200:]
		}
	}
	if len(lines) > 200 {
		lines = lines[len(lines)-200:]
	}
	return strings.Join(lines, "\n")
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mqtttest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// PlainAddr returns the host:port of the plaintext listener (Plaintext).
func (b *Broker) PlainAddr() string { return strings.TrimPrefix(b.PlainURL(), "mqtt://") }

// Pid returns the broker's process ID, 0 if it is not running.
func (b *Broker) Pid() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil || b.cmd.Process == nil {
		return 0
	}
	return b.cmd.Process.Pid
}
