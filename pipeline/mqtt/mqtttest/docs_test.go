package mqtttest

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A Mosquitto configuration in the documents is a fenced block whose info
// string starts with "mosquitto":
//
//	```mosquitto           a whole mosquitto.conf
//	```mosquitto conf.d    a file for /etc/mosquitto/conf.d, read by the
//	                       mosquitto.conf Debian's package ships
//
// A file named *.conf anywhere in the repository that holds Mosquitto
// settings counts too (a drop-in when its directory is conf.d).
// TestDocumentedMosquittoConfig starts the real broker with each.

// snippet is one Mosquitto configuration found in the repository.
type snippet struct {
	where  string // file:line, relative to the module root
	text   string
	dropIn bool
}

// mosquittoLine matches a line only a Mosquitto configuration would have
// (a YAML key has a colon after the name).
var mosquittoLine = regexp.MustCompile(`^\s*(listener|allow_anonymous|password_file|acl_file|persistence|persistence_location|autosave_on_changes|autosave_interval|require_certificate|per_listener_settings|max_queued_messages|set_tcp_nodelay)\s+\S`)

func looksLikeMosquitto(text string) bool {
	n := 0
	for line := range strings.Lines(text) {
		if mosquittoLine.MatchString(line) {
			n++
		}
	}
	return n >= 2
}

// findSnippets walks the repository for Mosquitto configurations. unmarked
// lists fenced blocks that look like one but are not marked, which the test
// would otherwise not run.
func findSnippets(root string) (snips []snippet, unmarked []string, err error) {
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		switch filepath.Ext(name) {
		case ".md":
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, blk := range fencedBlocks(string(b)) {
				where := fmt.Sprintf("%s:%d", rel, blk.line)
				info := strings.Fields(blk.info)
				switch {
				case len(info) > 0 && info[0] == "mosquitto":
					snips = append(snips, snippet{where: where, text: blk.text, dropIn: len(info) > 1 && info[1] == "conf.d"})
				case looksLikeMosquitto(blk.text):
					unmarked = append(unmarked, where)
				}
			}
		case ".conf":
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if looksLikeMosquitto(string(b)) {
				snips = append(snips, snippet{where: rel, text: string(b), dropIn: filepath.Base(filepath.Dir(path)) == "conf.d"})
			}
		}
		return nil
	})
	return snips, unmarked, err
}

type block struct {
	line       int // of the opening fence, from 1
	info, text string
}

// fencedBlocks returns the fenced code blocks of a CommonMark text (``` or
// ~~~, indented or not), without the fences and the fence's indentation.
func fencedBlocks(md string) []block {
	var out []block
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		t := strings.TrimLeft(lines[i], " \t")
		indent := len(lines[i]) - len(t)
		if !strings.HasPrefix(t, "```") && !strings.HasPrefix(t, "~~~") {
			continue
		}
		fence := t[:len(t)-len(strings.TrimLeft(t, t[:1]))]
		b := block{line: i + 1, info: strings.TrimSpace(t[len(fence):])}
		var body []string
		for i++; i < len(lines); i++ {
			c := strings.TrimSpace(lines[i])
			if strings.HasPrefix(c, fence) && strings.Trim(c, fence[:1]) == "" {
				break
			}
			l := lines[i]
			for k := 0; k < indent && len(l) > 0 && (l[0] == ' ' || l[0] == '\t'); k++ {
				l = l[1:]
			}
			body = append(body, l)
		}
		b.text = strings.Join(body, "\n") + "\n"
		out = append(out, b)
	}
	return out
}

func TestFencedBlocks(t *testing.T) {
	md := "text\n```mosquitto conf.d\nlistener 1\n```\n- item\n\n  ~~~~sh\n  echo ```\n  ~~~~\n```\nunclosed\n"
	got := fencedBlocks(md)
	want := []block{{2, "mosquitto conf.d", "listener 1\n"}, {7, "sh", "echo ```\n"}, {10, "", "unclosed\n\n"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %+v; want %+v", got, want)
	}
	if !looksLikeMosquitto("listener 8883\nallow_anonymous false\n") || looksLikeMosquitto("password_file: /x\npersistence: true\nlistener: x\n") {
		t.Error("looksLikeMosquitto: want Mosquitto's syntax told from YAML's")
	}
}

// TestDocumentedMosquittoConfig starts the real Mosquitto with every
// Mosquitto configuration in the documents, its paths, ports and addresses
// replaced by the test's (a generated CA and server certificate, a password
// file made with mosquitto_passwd, an ACL), and checks it comes up, listens
// on each listener (TLS ones complete a handshake) and stays up. Mosquitto
// exits at start on a setting it cannot parse: "autosave_on_changes 1000",
// which the documents once recommended, stopped Debian 12's 2.0.11 from
// starting. Without a mosquitto binary the broker part is skipped, except
// with CI=true, where it fails.
func TestDocumentedMosquittoConfig(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	snips, unmarked, err := findSnippets(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range unmarked {
		t.Errorf("%s: a fenced block that looks like a Mosquitto configuration is not marked ```mosquitto (or ```mosquitto conf.d), so it is not tested", w)
	}
	if len(snips) == 0 {
		t.Fatalf("no Mosquitto configuration found under %s (fenced ```mosquitto blocks in *.md, or *.conf files); the documents recommend one", root)
	}
	if testing.Short() {
		t.Skip("starting Mosquitto: skipped with -short")
	}
	bin := Require(t)
	for _, s := range snips {
		t.Run(s.where, func(t *testing.T) { runSnippet(t, bin, s) })
	}
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// listen is a listener of a configuration under test.
type listen struct {
	port int    // TCP port on 127.0.0.1, or 0
	unix string // socket path for "listener 0 PATH"
	tls  bool   // has a certfile
}

// harness holds the files a configuration under test refers to.
type harness struct {
	t      *testing.T
	dir    string
	certs  Certs
	passwd string
	acl    string
}

func runSnippet(t *testing.T, bin string, s snippet) {
	h := &harness{t: t, dir: t.TempDir()}
	var err error
	if h.certs, err = writeCerts(h.dir); err != nil {
		t.Fatal(err)
	}
	tool, err := passwdTool(bin)
	if err != nil {
		t.Fatal(err)
	}
	h.passwd = filepath.Join(h.dir, "passwd")
	if out, err := exec.Command(tool, "-c", "-b", h.passwd, "vigil", randomHex(12)).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	h.acl = filepath.Join(h.dir, "acl")
	if err := os.WriteFile(h.acl, []byte(acl), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"data", "conf.d"} {
		if err := os.MkdirAll(filepath.Join(h.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// A free port can be taken between choosing and binding it: retry.
	for try := 0; ; try++ {
		logs, err := h.run(bin, s)
		if err == nil {
			return
		}
		if try == 2 || !strings.Contains(logs, "in use") {
			t.Fatalf("%v\nmosquitto's log:\n%s", err, logs)
		}
	}
}

// run writes the configuration, starts Mosquitto with it and checks it. It
// returns the broker's log.
func (h *harness) run(bin string, s snippet) (string, error) {
	conf, listeners, hasUser, err := h.substitute(s.text)
	if err != nil {
		h.t.Fatalf("%s: %v", s.where, err)
	}
	var head strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&head, format+"\n", args...) }
	main := filepath.Join(h.dir, "mosquitto.conf")
	if s.dropIn {
		line("# /etc/mosquitto/mosquitto.conf as Debian 12's mosquitto package ships it, with the test's paths.")
		line("pid_file %s", filepath.Join(h.dir, "mosquitto.pid"))
		line("persistence true")
		line("persistence_location %s/", filepath.Join(h.dir, "data"))
		line("log_dest file %s", filepath.Join(h.dir, "mosquitto-file.log"))
		line("include_dir %s", filepath.Join(h.dir, "conf.d"))
	}
	line("# Added by TestDocumentedMosquittoConfig.")
	line("log_dest stderr")
	if os.Geteuid() == 0 && !hasUser {
		line("user root") // the files are in a 0700 directory owned by root
	}
	text := head.String() + conf
	if s.dropIn {
		text = head.String()
		if err := os.WriteFile(filepath.Join(h.dir, "conf.d", "snippet.conf"), []byte(conf), 0o600); err != nil {
			h.t.Fatal(err)
		}
	}
	if err := os.WriteFile(main, []byte(text), 0o600); err != nil {
		h.t.Fatal(err)
	}
	logPath := filepath.Join(h.dir, "mosquitto.log")
	logf, err := os.Create(logPath)
	if err != nil {
		h.t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", main)
	cmd.Dir = h.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		h.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(exited)
	}()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	readLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }

	if err := h.check(listeners, exited); err != nil {
		shown := fmt.Sprintf("%s:\n%s", main, numbered(text))
		if s.dropIn {
			shown += fmt.Sprintf("%s:\n%s", filepath.Join(h.dir, "conf.d", "snippet.conf"), numbered(conf))
		}
		return readLog(), fmt.Errorf("%s: %w\n%s", s.where, err, shown)
	}
	return readLog(), nil
}

// check waits for every listener, shakes hands on the TLS ones, and checks
// the broker is still running a moment later.
func (h *harness) check(listeners []listen, exited <-chan struct{}) error {
	deadline := time.Now().Add(10 * time.Second)
	for _, l := range listeners {
		network, addr := "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(l.port))
		if l.unix != "" {
			network, addr = "unix", l.unix
		}
		for {
			c, err := net.DialTimeout(network, addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				return errors.New("mosquitto exited at start: it refused the configuration")
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("mosquitto does not listen on %s within 10s", addr)
			}
		}
		if l.tls {
			if err := h.handshake(addr); err != nil {
				return fmt.Errorf("TLS listener %s: %w", addr, err)
			}
		}
	}
	select {
	case <-exited:
		return errors.New("mosquitto exited after it started listening")
	case <-time.After(300 * time.Millisecond):
	}
	return nil
}

func (h *harness) handshake(addr string) error {
	pem, err := os.ReadFile(h.certs.CAFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cert, err := tls.LoadX509KeyPair(h.certs.ClientCertFile, h.certs.ClientKeyFile)
	if err != nil {
		return err
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "localhost"})
	if err != nil {
		return err
	}
	return c.Close()
}

// substitute replaces in a configuration what names the machine it was
// written for: listeners' ports and addresses, and the files it refers
// to. The rest of each line, a trailing remark included, is kept as
// written, so what Mosquitto would make of it is tested too. A path the
// test does not know how to provide is an error: teach substitute.
func (h *harness) substitute(text string) (conf string, listeners []listen, hasUser bool, err error) {
	var out strings.Builder
	cur := -1 // the listener the lines belong to
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			out.WriteString(line + "\n")
			continue
		}
		path := func(p string) { line = replaceArgs(line, 1, p) }
		switch f[0] {
		case "listener", "port":
			l := listen{}
			if f[0] == "listener" && len(f) > 2 && f[1] == "0" {
				l.unix = filepath.Join(h.dir, fmt.Sprintf("listener-%d.sock", n))
				line = replaceArgs(line, 2, "0", l.unix)
			} else {
				l.port = freePort(h.t)
				if f[0] == "listener" {
					line = replaceArgs(line, 2, strconv.Itoa(l.port), "127.0.0.1")
				} else {
					line = replaceArgs(line, 1, strconv.Itoa(l.port))
				}
			}
			listeners = append(listeners, l)
			cur = len(listeners) - 1
		case "bind_address":
			line = replaceArgs(line, 1, "127.0.0.1")
		case "cafile":
			path(h.certs.CAFile)
		case "capath":
			path(filepath.Dir(h.certs.CAFile))
		case "certfile":
			path(h.certs.ServerCertFile)
			if cur >= 0 {
				listeners[cur].tls = true
			}
		case "keyfile":
			path(h.certs.ServerKeyFile)
		case "password_file":
			path(h.passwd)
		case "acl_file":
			path(h.acl)
		case "persistence_location":
			path(filepath.Join(h.dir, "data") + "/")
		case "pid_file":
			path(filepath.Join(h.dir, "snippet.pid"))
		case "log_dest":
			if len(f) > 2 && f[1] == "file" {
				line = replaceArgs(line, 2, "file", filepath.Join(h.dir, "snippet-file.log"))
			}
		case "user":
			hasUser = true
			if os.Geteuid() == 0 {
				line = replaceArgs(line, 1, "root")
			}
		default:
			for _, a := range f[1:] {
				if strings.HasPrefix(a, "/") {
					return "", nil, false, fmt.Errorf("line %d: %s names a path (%s) the test does not provide; teach substitute in %s", n, f[0], a, "pipeline/mqtt/mqtttest/docs_test.go")
				}
			}
		}
		out.WriteString(line + "\n")
	}
	if len(listeners) == 0 {
		return "", nil, false, errors.New("no listener or port: the test cannot tell whether the broker listens")
	}
	return out.String(), listeners, hasUser, nil
}

// replaceArgs replaces the first n arguments after the directive of line
// with args, keeping the text after them as written.
func replaceArgs(line string, n int, args ...string) string {
	rest := strings.TrimLeft(line, " \t")
	indent := line[:len(line)-len(rest)]
	end := strings.IndexAny(rest, " \t")
	if end < 0 {
		return indent + rest + " " + strings.Join(args, " ")
	}
	name, rest := rest[:end], rest[end:]
	for range n {
		r := strings.TrimLeft(rest, " \t")
		if r == "" || strings.HasPrefix(r, "#") {
			break
		}
		if k := strings.IndexAny(r, " \t"); k >= 0 {
			rest = r[k:]
		} else {
			rest = ""
		}
	}
	return indent + name + " " + strings.Join(args, " ") + rest
}

func TestReplaceArgs(t *testing.T) {
	for _, tc := range []struct {
		line string
		n    int
		args []string
		want string
	}{
		{"listener 8883 10.8.0.1   # the VPN", 2, []string{"1234", "127.0.0.1"}, "listener 1234 127.0.0.1   # the VPN"},
		{"listener 8883", 2, []string{"1234", "127.0.0.1"}, "listener 1234 127.0.0.1"},
		{"  cafile /etc/ca.pem", 1, []string{"/tmp/ca"}, "  cafile /tmp/ca"},
		{"password_file /etc/passwd # remark", 1, []string{"/tmp/p"}, "password_file /tmp/p # remark"},
		{"user", 1, []string{"root"}, "user root"},
	} {
		if got := replaceArgs(tc.line, tc.n, tc.args...); got != tc.want {
			t.Errorf("replaceArgs(%q, %d, %q) = %q; want %q", tc.line, tc.n, tc.args, got, tc.want)
		}
	}
}

func numbered(text string) string {
	var b strings.Builder
	for i, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		fmt.Fprintf(&b, "%3d  %s\n", i+1, l)
	}
	return b.String()
}
