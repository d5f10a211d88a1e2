package syslog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/output"
	"github.com/vigil-iot/vigil/pipeline/output/format"
	"github.com/vigil-iot/vigil/pipeline/output/format/formattest"
)

// rsyslogConf is the receiver's configuration: TLS (gtls, mutual, the
// client's certificate checked against the CA and its name), plain TCP and
// UDP inputs on loopback, every message written as one JSON line of the
// fields rsyslog parsed. Control characters are kept as received, so that
// the test sees exactly what was sent.
const rsyslogConf = `
global(
	workDirectory="{{dir}}/work"
	maxMessageSize="64k"
	parser.escapeControlCharactersOnReceive="off"
	defaultNetstreamDriverCAFile="{{ca}}"
	defaultNetstreamDriverCertFile="{{cert}}"
	defaultNetstreamDriverKeyFile="{{key}}"
)
module(load="imtcp" maxSessions="50")
module(load="imudp")
input(type="imtcp" name="tls" address="127.0.0.1" port="{{tls}}" ruleset="out"
	streamDriver.name="gtls" streamDriver.mode="1"
	streamDriver.authMode="x509/name" permittedPeer=["vigil-client"])
input(type="imtcp" name="tcp" address="127.0.0.1" port="{{tcp}}" ruleset="out")
input(type="imudp" name="udp" address="127.0.0.1" port="{{udp}}" ruleset="out")
template(name="fields" type="list" option.jsonf="on") {
	property(outname="input" name="inputname" format="jsonf")
	property(outname="pri" name="pri" format="jsonf")
	property(outname="severity" name="syslogseverity" format="jsonf")
	property(outname="facility" name="syslogfacility" format="jsonf")
	property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
	property(outname="hostname" name="hostname" format="jsonf")
	property(outname="app_name" name="app-name" format="jsonf")
	property(outname="procid" name="procid" format="jsonf")
	property(outname="msgid" name="msgid" format="jsonf")
	property(outname="sd" name="structured-data" format="jsonf")
	property(outname="msg" name="msg" format="jsonf")
	property(outname="raw" name="rawmsg" format="jsonf")
}
ruleset(name="out") {
	action(type="omfile" file="{{dir}}/messages.jsonl" template="fields")
}
`

// rsyslog is an rsyslogd started by the test.
type rsyslog struct {
	t              *testing.T
	bin, dir, conf string
	tls, tcp, udp  int
	cmd            *exec.Cmd
	exited         chan struct{}
	pki            *pki
}

// rsyslogd returns the path of rsyslogd, skipping the test when it is
// missing, unless CI=true.
func rsyslogd(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		bin, err = exec.LookPath("/usr/sbin/rsyslogd")
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("rsyslogd not found, and CI=true: install rsyslog and rsyslog-gnutls")
		}
		t.Skip("rsyslogd not found (install rsyslog and rsyslog-gnutls)")
	}
	return bin
}

// freePorts returns a free TCP port and a free UDP port on loopback.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ports = append(ports, pc.LocalAddr().(*net.UDPAddr).Port)
	pc.Close()
	return ports
}

func startRsyslog(t *testing.T) *rsyslog {
	t.Helper()
	bin := rsyslogd(t)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "work"), 0o700); err != nil {
		t.Fatal(err)
	}
	p := newPKI(t, dir)
	ports := freePorts(t, 2)
	r := &rsyslog{t: t, bin: bin, dir: dir, conf: filepath.Join(dir, "rsyslog.conf"),
		tls: ports[0], tcp: ports[1], udp: ports[2], pki: p}
	conf := strings.NewReplacer(
		"{{dir}}", dir, "{{ca}}", p.CAFile, "{{cert}}", p.ServerCert, "{{key}}", p.ServerKey,
		"{{tls}}", strconv.Itoa(r.tls), "{{tcp}}", strconv.Itoa(r.tcp), "{{udp}}", strconv.Itoa(r.udp),
	).Replace(rsyslogConf)
	if err := os.WriteFile(r.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *rsyslog) start() {
	r.t.Helper()
	log, err := os.OpenFile(filepath.Join(r.dir, "rsyslogd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		r.t.Fatal(err)
	}
	defer log.Close()
	r.cmd = exec.Command(r.bin, "-n", "-f", r.conf, "-i", filepath.Join(r.dir, "rsyslogd.pid"))
	r.cmd.Stdout, r.cmd.Stderr = log, log
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.exited = make(chan struct{})
	cmd, exited := r.cmd, r.exited
	go func() { cmd.Wait(); close(exited) }()
	// Ready when both TCP inputs accept connections.
	deadline := time.Now().Add(10 * time.Second)
	for _, port := range []int{r.tcp, r.tls} {
		for {
			c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				r.t.Fatalf("rsyslogd exited: %s", r.log())
			default:
			}
			if time.Now().After(deadline) {
				r.t.Fatalf("rsyslogd does not listen on %d: %s", port, r.log())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// stop ends rsyslogd with SIGTERM, which makes it write what it received.
func (r *rsyslog) stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-r.exited
	}
	r.cmd = nil
}

func (r *rsyslog) log() string {
	b, _ := os.ReadFile(filepath.Join(r.dir, "rsyslogd.log"))
	return string(b)
}

// record is one message as rsyslog parsed it.
type record struct {
	Input, PRI, Severity, Facility, Timestamp, Hostname, AppName, ProcID, MsgID, SD, Msg, Raw string
	params                                                                                    map[string]string
}

func (r *rsyslog) records() []record {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, "messages.jsonl"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		r.t.Fatal(err)
	}
	// rsyslog may be writing while the test polls: parse complete lines
	// only (after stop, every line is complete).
	b = b[:bytes.LastIndexByte(b, '\n')+1]
	var rs []record
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var j struct {
			Input, PRI, Severity, Facility, Timestamp, Hostname string
			AppName                                             string `json:"app_name"`
			ProcID                                              string `json:"procid"`
			MsgID                                               string `json:"msgid"`
			SD                                                  string `json:"sd"`
			Msg, Raw                                            string
		}
		if err := json.Unmarshal(sc.Bytes(), &j); err != nil {
			r.t.Fatalf("rsyslog wrote %q: %v", sc.Bytes(), err)
		}
		rec := record{j.Input, j.PRI, j.Severity, j.Facility, j.Timestamp, j.Hostname, j.AppName, j.ProcID, j.MsgID, j.SD, j.Msg, j.Raw, map[string]string{}}
		if rec.SD != "-" {
			p := &parser{b: []byte(rec.SD)}
			for !p.done() {
				e, err := p.element()
				if err != nil {
					r.t.Fatalf("rsyslog's structured data %q: %v", rec.SD, err)
				}
				for _, prm := range e.Params {
					rec.params[prm.Name] = prm.Value
				}
			}
		}
		rs = append(rs, rec)
	}
	return rs
}

// waitRecords waits until at least n records were written.
func (r *rsyslog) waitRecords(n int) []record {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rs := r.records()
		if len(rs) >= n {
			return rs
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("rsyslog wrote %d records; want %d\n%s", len(rs), n, r.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nastyAlert has field contents that need escaping or replacing.
func nastyAlert(i int) pipeline.Alert {
	a := testAlert()
	a.ID = fmt.Sprintf("ep-%04d", i)
	a.Time += int64(i) * 1001 // distinct microseconds and nanoseconds
	a.Device = fmt.Sprintf(`pump "%d" \ [west] ]`, i)
	a.Signal = "température ü\xff"
	a.Detector = `det\"]`
	a.Kind = "traffic.flood ü"
	if i%2 == 1 {
		a.State, a.Severity = pipeline.Resolved, pipeline.Warning
	}
	a.Message = fmt.Sprintf("alert %d: \"quoted\" \\ ] — Überdruck\nsecond line\ttab", i)
	return a
}

// msgFormatter makes MSG the alert's ID and message, newlines included.
var msgFormatter = output.FormatterFunc(func(dst []byte, a *pipeline.Alert) []byte {
	dst = append(dst, a.ID...)
	dst = append(dst, ' ')
	return append(dst, a.Message...)
})

// checkRecords checks that the alerts arrived exactly once each, intact.
func checkRecords(t *testing.T, rs []record, alerts []pipeline.Alert, input string) {
	t.Helper()
	byID := map[string][]record{}
	for _, r := range rs {
		if r.Input == input {
			byID[r.params["id"]] = append(byID[r.params["id"]], r)
		}
	}
	n := 0
	for _, rr := range byID {
		n += len(rr)
	}
	if n != len(alerts) {
		t.Errorf("%s: %d records; want %d", input, n, len(alerts))
	}
	for i := range alerts {
		a := &alerts[i]
		rr := byID[a.ID]
		if len(rr) != 1 {
			t.Errorf("%s: alert %s received %d times", input, a.ID, len(rr))
			continue
		}
		r := rr[0]
		sev := strconv.Itoa(severity(a))
		wantMsg := string(msgFormatter(nil, a))
		ts := time.Unix(0, a.Time).UTC().Format(timestampLayout)
		for _, c := range []struct{ name, got, want string }{
			{"severity", r.Severity, sev},
			{"facility", r.Facility, "16"},
			{"timestamp", r.Timestamp, ts},
			{"hostname", r.Hostname, "plant-a"},
			{"app-name", r.AppName, "vigil"},
			{"procid", r.ProcID, strconv.Itoa(os.Getpid())},
			{"msgid", r.MsgID, "traffic.flood__"},
			{"msg", strings.TrimPrefix(r.Msg, bom), wantMsg},
			{"device", r.params["device"], a.Device},
			{"detector", r.params["detector"], a.Detector},
			{"signal", r.params["signal"], valid(a.Signal)},
			{"event", r.params["event"], a.EventID()},
			{"state", r.params["state"], a.State.String()},
			{"severity param", r.params["severity"], a.Severity.String()},
		} {
			if c.got != c.want {
				t.Errorf("%s: alert %s: %s %q; want %q", input, a.ID, c.name, c.got, c.want)
			}
		}
	}
}

func TestRsyslog(t *testing.T) {
	r := startRsyslog(t)
	ctx := context.Background()
	tlsCfg := Config{
		Address: net.JoinHostPort("127.0.0.1", strconv.Itoa(r.tls)),
		TLS:     output.TLS{CAFile: r.pki.CAFile, CertFile: r.pki.ClientCert, KeyFile: r.pki.ClientKey},
		Timeout: 5 * time.Second,
	}
	newOut := func(cfg Config) *Output {
		o, err := New(cfg, msgFormatter, output.Meta{Hostname: "plant-a"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { o.Close(ctx) })
		return o
	}
	var alerts []pipeline.Alert
	for i := range 500 {
		alerts = append(alerts, nastyAlert(i))
	}

	t.Run("tls", func(t *testing.T) {
		o := newOut(tlsCfg)
		start := time.Now()
		if err := o.Connect(ctx); err != nil {
			t.Fatalf("%v\n%s", err, r.log())
		}
		for i := 0; i < len(alerts); i += 50 {
			if err := o.Write(ctx, alerts[i:i+50]); err != nil {
				t.Fatal(err)
			}
		}
		if err := o.Close(ctx); err != nil {
			t.Fatal(err)
		}
		rs := r.waitRecords(len(alerts))
		t.Logf("500 alerts over TLS in %v", time.Since(start))
		checkRecords(t, rs, alerts, "tls")
		if testing.Verbose() {
			t.Logf("rsyslog's record of alert 1: %+v", rs[1])
		}
	})

	t.Run("tls without client certificate", func(t *testing.T) {
		before := len(r.records())
		cfg := tlsCfg
		cfg.TLS.CertFile, cfg.TLS.KeyFile = "", ""
		o := newOut(cfg)
		err := o.Connect(ctx)
		if err == nil {
			// Should rsyslog accept the handshake, nothing may arrive.
			t.Errorf("Connect without a client certificate succeeded")
			o.Write(ctx, alerts[:1])
		} else {
			t.Logf("refused: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
		if n := len(r.records()); n != before {
			t.Errorf("rsyslog wrote %d records from a client without a certificate", n-before)
		}
	})

	for _, tc := range []struct {
		name string
		cert func() (string, string)
	}{
		{"another name", func() (string, string) { return r.pki.client("intruder") }},
		{"another CA", func() (string, string) {
			other := newPKI(t, t.TempDir())
			return other.ClientCert, other.ClientKey
		}},
	} {
		t.Run("tls with a client certificate of "+tc.name, func(t *testing.T) {
			before := len(r.records())
			cfg := tlsCfg
			cfg.TLS.CertFile, cfg.TLS.KeyFile = tc.cert()
			o := newOut(cfg)
			if err := o.Connect(ctx); err == nil {
				t.Errorf("Connect with a client certificate of %s succeeded", tc.name)
				o.Write(ctx, alerts[:1])
			} else {
				t.Logf("refused: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
			if n := len(r.records()); n != before {
				t.Errorf("rsyslog wrote %d records from a refused client", n-before)
			}
		})
	}

	t.Run("restart", func(t *testing.T) {
		before := len(r.records())
		o := newOut(tlsCfg)
		batch := func(from int) []pipeline.Alert {
			b := make([]pipeline.Alert, 20)
			for i := range b {
				b[i] = nastyAlert(from + i)
				b[i].ID = fmt.Sprintf("restart-%04d", from+i)
			}
			return b
		}
		// The Runner's loop: Write, and on error Connect and write again.
		write := func(b []pipeline.Alert) {
			for attempt := 0; ; attempt++ {
				err := o.Write(ctx, b)
				if err == nil {
					return
				}
				if attempt == 5 {
					t.Fatalf("Write: %v", err)
				}
				t.Logf("Write: %v; reconnecting", err)
				if err := o.Connect(ctx); err != nil {
					t.Logf("Connect: %v", err)
					time.Sleep(100 * time.Millisecond)
				}
			}
		}
		if err := o.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		var sent []pipeline.Alert
		for i := range 3 {
			b := batch(20 * i)
			write(b)
			sent = append(sent, b...)
		}
		r.waitRecords(before + len(sent))
		r.stop()
		r.start()
		for i := 3; i < 6; i++ {
			b := batch(20 * i)
			write(b)
			sent = append(sent, b...)
		}
		rs := r.waitRecords(before + len(sent))
		time.Sleep(100 * time.Millisecond) // would a duplicate follow?
		checkRecords(t, r.records()[before:], sent, "tls")
		_ = rs
	})

	for _, tc := range []struct {
		name    string
		cfg     Config
		input   string
		from, n int
	}{
		{"tcp octet-counting", Config{Network: NetworkTCP, Address: "127.0.0.1:" + strconv.Itoa(r.tcp)}, "tcp", 0, 50},
		{"udp", Config{Network: NetworkUDP, Address: "127.0.0.1:" + strconv.Itoa(r.udp)}, "udp", 0, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(r.records())
			o := newOut(tc.cfg)
			if err := o.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			b := make([]pipeline.Alert, tc.n)
			for i := range b {
				b[i] = nastyAlert(i)
				b[i].ID = fmt.Sprintf("%s-%d", tc.name, i)
			}
			for i := 0; i < len(b); i += 10 {
				if err := o.Write(ctx, b[i:i+10]); err != nil {
					t.Fatal(err)
				}
			}
			r.waitRecords(before + len(b))
			checkRecords(t, r.records()[before:], b, tc.input)
		})
	}

	t.Run("tcp non-transparent", func(t *testing.T) {
		before := len(r.records())
		o := newOut(Config{Network: NetworkTCP, Framing: FramingNonTransparent, Address: "127.0.0.1:" + strconv.Itoa(r.tcp)})
		if err := o.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		b := make([]pipeline.Alert, 20)
		for i := range b {
			b[i] = nastyAlert(i)
			b[i].ID = fmt.Sprintf("lf-%d", i)
		}
		if err := o.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
		rs := r.waitRecords(before + len(b))[before:]
		for i := range b {
			b[i].Message = strings.ReplaceAll(b[i].Message, "\n", " ")
		}
		checkRecords(t, rs, b, "tcp")
	})
}

// siemAlert is nastyAlert with more of what CEF and LEEF must escape: pipes,
// '=', CR/LF and the LEEF delimiter in the header and extension fields.
func siemAlert(i int) pipeline.Alert {
	a := nastyAlert(i)
	a.Device = fmt.Sprintf(`pump|%d = "x" \ ]^`, i)
	a.Detector = `det|x\"]=`
	a.Topic = "plant/a|b=c^d"
	a.Unit = "bar\r\n|="
	a.Message = fmt.Sprintf("alert %d: a|b=c \\= \\| \"quoted\" ] ^ — Überdruck\r\nsecond line\ttab \xff end", i)
	return a
}

// TestRsyslogSIEMFormats sends real CEF and LEEF events of nasty alerts
// through rsyslog over mutual TLS and parses what rsyslog wrote with the
// strict parsers of the format package's tests: every alert arrives once,
// and every field parses back to what the alert holds.
func TestRsyslogSIEMFormats(t *testing.T) {
	r := startRsyslog(t)
	ctx := context.Background()
	meta := output.Meta{Vendor: "Vigil", Product: "Vigil", Version: "1.2|3", Hostname: "plant-a"}
	leef, err := format.NewLEEF(meta, '^')
	if err != nil {
		t.Fatal(err)
	}
	formats := []struct {
		name  string
		f     output.Formatter
		id    func(msg string) (string, error) // the alert ID an event carries
		check func(t *testing.T, a *pipeline.Alert, msg string)
	}{
		{"cef", format.NewCEF(meta),
			func(msg string) (string, error) {
				ev, err := formattest.ParseCEF(msg)
				if err != nil {
					return "", err
				}
				return ev.Ext["externalId"], nil
			},
			func(t *testing.T, a *pipeline.Alert, msg string) { formattest.CheckCEF(t, meta, a, msg) }},
		{"leef", leef,
			func(msg string) (string, error) {
				ev, err := formattest.ParseLEEF(msg)
				if err != nil {
					return "", err
				}
				return ev.Attrs["alertId"], nil
			},
			func(t *testing.T, a *pipeline.Alert, msg string) { formattest.CheckLEEF(t, meta, '^', a, msg) }},
	}
	var alerts []pipeline.Alert
	for i := range 100 {
		alerts = append(alerts, siemAlert(i))
	}
	written := 0
	for _, tc := range formats {
		t.Run(tc.name, func(t *testing.T) {
			o, err := New(Config{
				Address: net.JoinHostPort("127.0.0.1", strconv.Itoa(r.tls)),
				TLS:     output.TLS{CAFile: r.pki.CAFile, CertFile: r.pki.ClientCert, KeyFile: r.pki.ClientKey},
				Timeout: 5 * time.Second,
			}, tc.f, meta)
			if err != nil {
				t.Fatal(err)
			}
			if err := o.Connect(ctx); err != nil {
				t.Fatalf("%v\n%s", err, r.log())
			}
			for i := 0; i < len(alerts); i += 25 {
				if err := o.Write(ctx, alerts[i:i+25]); err != nil {
					t.Fatal(err)
				}
			}
			if err := o.Close(ctx); err != nil {
				t.Fatal(err)
			}
			written += len(alerts)
			rs := r.waitRecords(written)[written-len(alerts):]
			byID := map[string][]string{}
			for _, rec := range rs {
				msg := strings.TrimPrefix(rec.Msg, bom)
				id, err := tc.id(msg)
				if err != nil {
					t.Errorf("rsyslog wrote an event the strict %s parser refuses: %v\n%q", tc.name, err, msg)
					continue
				}
				byID[id] = append(byID[id], msg)
			}
			for i := range alerts {
				a := &alerts[i]
				msgs := byID[a.ID]
				if len(msgs) != 1 {
					t.Errorf("alert %s arrived %d times; want once", a.ID, len(msgs))
					continue
				}
				tc.check(t, a, msgs[0])
			}
			if testing.Verbose() {
				t.Logf("rsyslog's %s event of alert 1: %q", tc.name, byID[alerts[1].ID])
			}
		})
	}
}
