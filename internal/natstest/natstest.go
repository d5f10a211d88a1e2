// Package natstest runs real nats-server processes with JetStream for tests
// that need a server of at least version 2.11 (KV limit markers, which let
// watchers see a lease expire): the scale-out packages. StartCluster runs a
// JetStream cluster of several nodes for replicated streams and node loss.
//
// The binary is the one named by the environment variable VIGIL_NATS_SERVER
// (.ci/run builds v2.15.3 and sets it), else a nats-server on PATH whose
// version is at least MinVersion. Without one the test is skipped, or fails
// when CI is "true". Servers listen on loopback only, keep their JetStream
// store in the test's temporary directory, and are killed when the test
// ends; Kill and Restart let a test crash and bring back a server.
package natstest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	natsclient "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// MinVersion is the oldest nats-server the scale-out needs.
const MinVersion = "2.11.0"

// EnvServer names the environment variable holding the nats-server binary.
const EnvServer = "VIGIL_NATS_SERVER"

// Require returns the path of a nats-server binary of at least MinVersion.
// Without one it skips the test, or fails it when CI is "true".
func Require(t testing.TB) string {
	t.Helper()
	bin, why := find()
	if bin != "" {
		return bin
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("natstest: %s (CI=true: .ci/run installs one and sets %s)", why, EnvServer)
	}
	t.Skipf("natstest: %s; skipping", why)
	return ""
}

// find looks for the binary; why says what is missing when it finds none.
func find() (bin, why string) {
	if p := os.Getenv(EnvServer); p != "" {
		v, err := Version(p)
		switch {
		case err != nil:
			return "", fmt.Sprintf("%s=%s: %v", EnvServer, p, err)
		case !AtLeast(v, MinVersion):
			return "", fmt.Sprintf("%s=%s is version %s; need >= %s", EnvServer, p, v, MinVersion)
		}
		return p, ""
	}
	p, err := exec.LookPath("nats-server")
	if err != nil {
		return "", fmt.Sprintf("no nats-server >= %s: set %s or put one on PATH", MinVersion, EnvServer)
	}
	if v, err := Version(p); err == nil && AtLeast(v, MinVersion) {
		return p, ""
	} else if err == nil {
		return "", fmt.Sprintf("nats-server on PATH (%s) is version %s; need >= %s: set %s", p, v, MinVersion, EnvServer)
	}
	return "", fmt.Sprintf("nats-server on PATH (%s) does not report its version", p)
}

// Version runs "bin --version" and returns the version, without the "v".
func Version(bin string) (string, error) {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("--version: %w", err)
	}
	// "nats-server: v2.15.3"
	s := strings.TrimSpace(string(out))
	i := strings.LastIndexByte(s, 'v')
	if i < 0 {
		return "", fmt.Errorf("unexpected --version output %q", s)
	}
	return s[i+1:], nil
}

// AtLeast reports whether version v (major.minor.patch, an optional
// -suffix ignored) is at least min.
func AtLeast(v, min string) bool {
	a, b := parts(v), parts(min)
	for i := range a {
		if a[i] != b[i] {
			return a[i] > b[i]
		}
	}
	return true
}

func parts(v string) [3]int {
	var p [3]int
	v, _, _ = strings.Cut(v, "-")
	for i, s := range strings.SplitN(v, ".", 3) {
		p[i], _ = strconv.Atoi(s)
	}
	return p
}

// Server is a running nats-server with JetStream.
type Server struct {
	t       testing.TB
	bin     string
	dir     string
	conf    string
	logPath string
	port    int
	monitor int
	health  string // the monitor path that says the server is ready

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start starts a nats-server with JetStream on free loopback ports, its
// store in t.TempDir(), and returns once it reports JetStream ready. It is
// killed when the test ends, and its log is printed if the test failed.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, bin: Require(t), dir: t.TempDir()}
	s.conf = filepath.Join(s.dir, "nats.conf")
	s.logPath = filepath.Join(s.dir, "nats.log")
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			b, _ := os.ReadFile(s.logPath)
			t.Logf("nats-server log (%s):\n%s", s.logPath, tail(string(b), 100))
		}
	})
	for try := 0; ; try++ {
		ps := freePorts(t, 2)
		s.port, s.monitor = ps[0], ps[1]
		conf := fmt.Sprintf("listen: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\nserver_name: vigil-test\njetstream {\n  store_dir: %q\n}\n",
			s.port, s.monitor, filepath.Join(s.dir, "js"))
		if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		err := s.start()
		if err == nil {
			return s
		}
		if try == 2 {
			t.Fatalf("natstest: %v", err)
		}
	}
}

func (s *Server) start() error {
	if err := s.launch(); err != nil {
		return err
	}
	return s.wait()
}

// launch starts the process.
func (s *Server) launch() error {
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, "-c", s.conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start nats-server: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	return nil
}

// wait returns once the server reports itself healthy.
func (s *Server) wait() error {
	s.mu.Lock()
	exited := s.exited
	s.mu.Unlock()
	path := s.health
	if path == "" {
		path = "/healthz?js-enabled-only=true"
	}
	health := fmt.Sprintf("http://127.0.0.1:%d%s", s.monitor, path)
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(15 * time.Second); ; {
		if resp, err := client.Get(health); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("nats-server exited during startup (port taken?)")
		case <-time.After(25 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("nats-server not healthy within 15s (%s)", health)
		}
	}
}

// URL is the client URL, nats://127.0.0.1:port.
func (s *Server) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(s.port) }

// Kill kills the server with SIGKILL and waits for it to exit. The store
// stays, for Restart.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, ex := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-ex
}

// Restart starts the server again with the same ports and store, killing it
// first if it runs.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	var err error
	for try := 0; try < 50; try++ { // the port may linger briefly
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("natstest: restart: %v", err)
}

// freePorts returns n distinct free loopback ports: each is held until all
// are chosen, so that the kernel cannot hand out one twice (a cluster's
// route port that is also a node's monitor port made routes fail with
// "400 Bad Request").
func freePorts(t testing.TB, n int) []int {
	ports := make([]int, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("natstest: free port: %v", err)
		}
		defer l.Close()
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Cluster is a JetStream cluster of nats-server processes on loopback.
type Cluster struct {
	Servers []*Server
}

// StartCluster starts an n-node JetStream cluster (n >= 3 for R3 streams
// that survive the loss of a node), each node with its own store in
// t.TempDir(), and returns once every node reports JetStream healthy (a
// meta leader elected). The nodes are killed when the test ends.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	bin := Require(t)
	c := &Cluster{Servers: make([]*Server, n)}
	routes := make([]int, n)
	ports := freePorts(t, 3*n)
	for i := range n {
		s := &Server{t: t, bin: bin, dir: t.TempDir(), health: "/healthz"}
		s.conf = filepath.Join(s.dir, "nats.conf")
		s.logPath = filepath.Join(s.dir, "nats.log")
		s.port, s.monitor, routes[i] = ports[3*i], ports[3*i+1], ports[3*i+2]
		c.Servers[i] = s
	}
	t.Cleanup(func() {
		for i, s := range c.Servers {
			s.Kill()
			if t.Failed() {
				b, _ := os.ReadFile(s.logPath)
				t.Logf("nats-server n%d log (%s):\n%s", i, s.logPath, tail(string(b), 40))
			}
		}
	})
	for i, s := range c.Servers {
		var rs []string
		for j, r := range routes {
			if j != i {
				rs = append(rs, fmt.Sprintf("nats-route://127.0.0.1:%d", r))
			}
		}
		conf := fmt.Sprintf("listen: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\nserver_name: n%d\n"+
			"jetstream {\n  store_dir: %q\n}\n"+
			"cluster {\n  name: vigil-test\n  listen: 127.0.0.1:%d\n  routes: [%s]\n}\n",
			s.port, s.monitor, i, filepath.Join(s.dir, "js"), routes[i], strings.Join(rs, ", "))
		if err := os.WriteFile(s.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := s.launch(); err != nil {
			t.Fatalf("natstest: node n%d: %v", i, err)
		}
	}
	for i, s := range c.Servers {
		if err := s.wait(); err != nil {
			t.Fatalf("natstest: node n%d: %v", i, err)
		}
	}
	return c
}

// URL is every node's client URL, comma separated, as NATS clients take
// a cluster's seed list.
func (c *Cluster) URL() string {
	urls := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		urls[i] = s.URL()
	}
	return strings.Join(urls, ",")
}

// JetStream connects to url (a Server's or a Cluster's URL), reconnecting
// for ever (a test may kill and restart nodes), and returns its JetStream
// context; the connection is closed when the test ends.
func JetStream(t testing.TB, url string, opts ...jetstream.JetStreamOpt) jetstream.JetStream {
	t.Helper()
	nc, err := natsclient.Connect(url, natsclient.MaxReconnects(-1), natsclient.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("natstest: connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	return js
}
