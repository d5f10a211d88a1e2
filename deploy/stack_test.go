package deploy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/internal/syncbuf"
	"go.yaml.in/yaml/v3"
)

const composeDir = "compose"

// process is a server a test started; it is killed when the test ends.
type process struct {
	cmd  *exec.Cmd
	out  *syncbuf.Buffer
	done chan struct{}
	err  error // of Wait, once done is closed
}

func startProcess(t *testing.T, name string, args ...string) *process {
	t.Helper()
	p := &process{out: &syncbuf.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(name, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = procAttr()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// stop sends SIGTERM and waits for the exit, at most d.
func (p *process) stop(t *testing.T, d time.Duration) error {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(d):
		t.Fatalf("%s did not stop within %s after SIGTERM:\n%s", p.cmd.Path, d, p.out.String())
		return nil
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// adapt rewrites a configuration written for the containers to this
// machine's paths and ports, and checks that none of the container paths is
// left (which would make the test pass for the wrong reason or fail
// obscurely).
func adapt(t *testing.T, name, text string, repl []string, gone ...string) string {
	t.Helper()
	out := strings.NewReplacer(repl...).Replace(text)
	for _, g := range gone {
		if strings.Contains(out, g) {
			t.Fatalf("%s: %q is still there after adapting it to this machine", name, g)
		}
	}
	return out
}

// waitFor polls fn every 50 ms until it returns true or d passes.
func waitFor(d time.Duration, fn func() bool) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if fn() {
			return true
		}
	}
	return fn()
}

func httpDo(method, url string) (int, string, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// scrapedNames returns the metric names in a Prometheus text exposition.
func scrapedNames(body string) map[string]bool {
	names := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

// composeFile is what the tests read of compose.yaml.
type composeFile struct {
	Services map[string]struct {
		Ports           []string `yaml:"ports"`
		Volumes         []string `yaml:"volumes"`
		ReadOnly        bool     `yaml:"read_only"`
		CapDrop         []string `yaml:"cap_drop"`
		StopGracePeriod string   `yaml:"stop_grace_period"`
	} `yaml:"services"`
	Secrets map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
}

// TestComposeStack runs the compose stack's pieces on this machine, without
// containers: dev-pki.sh makes the PKI and passwords; Mosquitto starts with
// the stack's mosquitto.conf (a bad configuration makes it exit at once) and
// refuses a wrong password, a client without a certificate and anonymous
// access; vigil config check accepts the stack's configurations with their
// files; vigil run with the stack's vigil.yaml connects, and with the
// simulated plant publishing (the stack's plant-sim.yaml) writes alerts to
// both outputs and takes a snapshot; then every metric the dashboard and
// the rules name is in its /metrics, vigil health reports it ready, and it
// stops cleanly on SIGTERM, as does Mosquitto, saving its sessions.
// compose.yaml itself is checked against the files it mounts.
func TestComposeStack(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Mosquitto and Vigil")
	}
	requireTool(t, "openssl")
	requireTool(t, "mosquitto_passwd", "/usr/bin/mosquitto_passwd")
	mosquitto := requireTool(t, "mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
	bin := buildVigil(t)
	work := t.TempDir()
	secrets := filepath.Join(work, "secrets")

	// The PKI and passwords.
	if code, out, errs := runTool(t, "sh", filepath.Join(composeDir, "dev-pki.sh"), secrets); code != 0 {
		t.Fatalf("dev-pki.sh: exit %d\n%s%s", code, out, errs)
	}
	for name, want := range map[string]os.FileMode{".": 0o700, "ca.key": 0o600, "vigil.key": 0o644, "passwd": 0o644} {
		fi, err := os.Stat(filepath.Join(secrets, name))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("secrets/%s: %v, mode %v; want %v", name, err, fi.Mode().Perm(), want)
		}
	}
	if pw := readFile(t, filepath.Join(secrets, "passwd")); !regexp.MustCompile(`(?m)^vigil:\$7\$`).MatchString(pw) || strings.Contains(pw, strings.TrimSpace(readFile(t, filepath.Join(secrets, "vigil-mqtt-password")))) {
		t.Errorf("secrets/passwd is not hashed (want vigil:$7$…, and no plain password):\n%s", pw)
	}
	if code, _, errs := runTool(t, "sh", filepath.Join(composeDir, "dev-pki.sh"), secrets); code == 0 || !strings.Contains(errs, "already has a CA") {
		t.Errorf("dev-pki.sh over an existing PKI: exit %d, %q; want a refusal", code, errs)
	}

	t.Run("compose.yaml", func(t *testing.T) {
		var cf composeFile
		if err := yaml.Unmarshal([]byte(readFile(t, filepath.Join(composeDir, "compose.yaml"))), &cf); err != nil {
			t.Fatal(err)
		}
		exists := func(what, host string) {
			p := filepath.Join(composeDir, host)
			if rest, ok := strings.CutPrefix(host, "./secrets/"); ok {
				p = filepath.Join(secrets, rest) // made by dev-pki.sh
			}
			if _, err := os.Stat(p); err != nil {
				t.Errorf("%s mounts %s, which does not exist: %v", what, host, err)
			}
		}
		for name, s := range cf.Services {
			for _, v := range s.Volumes {
				if host, _, _ := strings.Cut(v, ":"); strings.HasPrefix(host, ".") {
					exists("service "+name, host)
				}
			}
			for _, p := range s.Ports {
				if !strings.HasPrefix(p, "127.0.0.1:") {
					t.Errorf("service %s publishes %s beyond the host's loopback", name, p)
				}
			}
		}
		for name, s := range cf.Secrets {
			exists("secret "+name, s.File)
		}
		for _, name := range []string{"vigil", "plant-sim"} {
			s := cf.Services[name]
			if !s.ReadOnly || !slices.Equal(s.CapDrop, []string{"ALL"}) {
				t.Errorf("service %s: read_only %v, cap_drop %q; want a read-only root and no capabilities", name, s.ReadOnly, s.CapDrop)
			}
		}
		var vc unitSettings
		if err := yaml.Unmarshal([]byte(readFile(t, filepath.Join(composeDir, "vigil.yaml"))), &vc); err != nil {
			t.Fatal(err)
		}
		grace, err := time.ParseDuration(cf.Services["vigil"].StopGracePeriod)
		if need := vc.Pipeline.DrainTimeout + vc.Alerts.DrainTimeout + 15*time.Second; err != nil || grace < need {
			t.Errorf("vigil's stop_grace_period %q; want at least both drains and the snapshot (%s)", cf.Services["vigil"].StopGracePeriod, need)
		}
	})

	// Mosquitto with the stack's configuration.
	port := freePort(t)
	brokerURL := fmt.Sprintf("mqtts://127.0.0.1:%d", port)
	acl := filepath.Join(work, "acl")
	writeFile(t, acl, readFile(t, filepath.Join(composeDir, "mosquitto", "acl")), 0o600)
	data := filepath.Join(work, "mosquitto-data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := adapt(t, "mosquitto.conf", readFile(t, filepath.Join(composeDir, "mosquitto", "mosquitto.conf")), []string{
		"/mosquitto/config/passwd", filepath.Join(secrets, "passwd"),
		"/mosquitto/config/acl", acl,
		"/mosquitto/certs/", secrets + "/",
		"/run/secrets/", secrets + "/",
		"/mosquitto/data/", data + "/",
		"\nlistener 8883\n", fmt.Sprintf("\nlistener %d 127.0.0.1\n", port),
	}, "/mosquitto/", "/run/secrets/", "listener 8883")
	broker := startMosquitto(t, mosquitto, filepath.Join(work, "mosquitto.conf"), conf, port)

	// docs/LIVE.md's recommended settings are started by
	// TestDocumentedMosquittoConfig (pipeline/mqtt/mqtttest), with every
	// other Mosquitto snippet of the docs.

	// Vigil's and the simulator's configurations.
	state := filepath.Join(work, "vigil-data")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	toHere := []string{
		"mqtts://mosquitto:8883", brokerURL,
		"/run/secrets/", secrets + "/",
		"/etc/vigil/", secrets + "/",
		"/var/lib/vigil/", state + "/",
		"0.0.0.0:9464", metricsAddr,
	}
	vigilText := adapt(t, "vigil.yaml", readFile(t, filepath.Join(composeDir, "vigil.yaml")), toHere,
		"/run/secrets/", "/etc/vigil/", "/var/lib/vigil/", "mosquitto:8883", "0.0.0.0")
	simText := adapt(t, "plant-sim.yaml", readFile(t, filepath.Join(composeDir, "plant-sim.yaml")), toHere, "/run/secrets/", "/etc/vigil/")
	if strings.Contains(vigilText, "\ndetectors:") {
		t.Fatal("compose/vigil.yaml has a detectors section; the test adds its own")
	}
	// A pressure limit every simulated device exceeds: alerts at once,
	// warm-up or not, so both outputs write.
	vigilText += "\ndetectors:\n  overpressure:\n    limit: 0.5\n"
	vigilCfg, simCfg := filepath.Join(work, "vigil.yaml"), filepath.Join(work, "plant-sim.yaml")
	writeFile(t, vigilCfg, vigilText, 0o600)
	writeFile(t, simCfg, simText, 0o600)
	for _, cfg := range []string{vigilCfg, simCfg} {
		if code, out, errs := runTool(t, bin, "config", "check", cfg); code != 0 || !strings.Contains(out, "ok") {
			t.Fatalf("vigil config check (files too) %s: exit %d\n%s%s", filepath.Base(cfg), code, out, errs)
		}
	}

	t.Run("hardening", func(t *testing.T) {
		for _, tc := range []struct {
			name, from, to, want string
		}{
			{"wrong password", "vigil-mqtt-password", "plant-sim-mqtt-password", "not authorized"},
			{"no client certificate", "    cert_file: " + secrets + "/vigil.crt\n    key_file: " + secrets + "/vigil.key\n", "", "requires a client certificate"},
			{"anonymous", "  username: vigil\n  password_file: " + secrets + "/vigil-mqtt-password\n", "", "none configured"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if !strings.Contains(vigilText, tc.from) {
					t.Fatalf("vigil.yaml has no %q to change", tc.from)
				}
				cfg := filepath.Join(t.TempDir(), "vigil.yaml")
				writeFile(t, cfg, strings.Replace(vigilText, tc.from, tc.to, 1), 0o600)
				ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
				defer cancel()
				out, err := exec.CommandContext(ctx, bin, "run", "--config", cfg).CombinedOutput()
				if ctx.Err() != nil || err == nil || !strings.Contains(string(out), tc.want) {
					t.Errorf("vigil run with %s: %v; want a refusal naming %q at once:\n%s", tc.name, err, tc.want, out)
				}
			})
		}
	})

	// Vigil and the plant.
	vigil := startProcess(t, bin, "run", "--config", vigilCfg)
	if !waitFor(15*time.Second, func() bool {
		code, _, _ := httpDo("GET", "http://"+metricsAddr+"/readyz")
		return code == http.StatusOK
	}) {
		t.Fatalf("vigil run never became ready:\n%s", vigil.out.String())
	}
	if code, out, errs := runTool(t, bin, "simulate", "--broker", brokerURL, "--config", simCfg,
		"--devices", "4", "--anomalous", "2", "--duration", "2m", "--speed", "60"); code != 0 {
		t.Fatalf("vigil simulate with plant-sim.yaml: exit %d\n%s%s", code, out, errs)
	}
	sent := regexp.MustCompile(`(?m)^vigil_output_sent_total\{output="(archive|mqtt)"\} [1-9]`)
	var body string
	if !waitFor(20*time.Second, func() bool {
		_, body, _ = httpDo("GET", "http://"+metricsAddr+"/metrics")
		return len(sent.FindAllString(body, -1)) == 2
	}) {
		t.Fatalf("the outputs delivered no alerts:\n%s\n%s", grep(body, "vigil_output_sent"), vigil.out.String())
	}
	if code, answer, err := httpDo("POST", "http://"+metricsAddr+"/snapshot"); code != http.StatusOK {
		t.Fatalf("POST /snapshot: %d %q %v", code, answer, err)
	}

	t.Run("metrics named by the dashboard and rules", func(t *testing.T) {
		_, body, err := httpDo("GET", "http://"+metricsAddr+"/metrics")
		if err != nil {
			t.Fatal(err)
		}
		have := scrapedNames(body)
		for _, src := range []struct {
			what  string
			exprs []string
		}{{dashboardFile, dashboardExprs(t)}, {"the rules", ruleExprs(t)}} {
			names := namesIn(exporterName, src.exprs)
			if len(names) == 0 {
				t.Fatalf("no metric names found in %s", src.what)
			}
			for _, n := range names {
				if !have[n] {
					t.Errorf("%s uses %s, which vigil run does not export", src.what, n)
				}
			}
		}
	})

	t.Run("health", func(t *testing.T) {
		code, out, errs := runTool(t, bin, "health", "--url", "http://"+metricsAddr+"/readyz")
		if code != 0 || !strings.Contains(out, "ready") {
			t.Errorf("vigil health: exit %d, %s%s", code, out, errs)
		}
	})

	if err := vigil.stop(t, 60*time.Second); err != nil {
		t.Errorf("vigil run after SIGTERM: %v; want exit 0\n%s", err, vigil.out.String())
	}
	if fi, err := os.Stat(filepath.Join(state, "alerts.jsonl")); err != nil || fi.Size() == 0 {
		t.Errorf("the archive output wrote nothing to the state volume: %v", err)
	}
	if _, err := os.Stat(filepath.Join(state, "vigil.state")); err != nil {
		t.Errorf("no snapshot on the state volume after the stop: %v", err)
	}
	// The broker saves sessions and queued messages at a clean stop.
	if err := broker.stop(t, 10*time.Second); err != nil {
		t.Errorf("mosquitto after SIGTERM: %v; want exit 0", err)
	}
	if _, err := os.Stat(filepath.Join(data, "mosquitto.db")); err != nil {
		t.Errorf("no persistence file on Mosquitto's volume after a clean stop: %v", err)
	}
}

// startMosquitto writes conf to path and starts mosquitto with it (as root,
// with "user root": else it drops to its own user, who cannot read the
// test's private directories). It fails the test if Mosquitto exits, which
// it does at once on a bad configuration, or does not listen on port.
func startMosquitto(t *testing.T, bin, path, conf string, port int) *process {
	t.Helper()
	if os.Geteuid() == 0 {
		conf = "user root\n" + conf
	}
	writeFile(t, path, conf, 0o600)
	p := startProcess(t, bin, "-c", path)
	listening := waitFor(10*time.Second, func() bool {
		select {
		case <-p.done:
			return true
		default:
		}
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	select {
	case <-p.done:
		t.Fatalf("mosquitto exited (%v) with %s:\n%s", p.err, path, p.out.String())
	default:
	}
	if !listening {
		t.Fatalf("mosquitto did not listen on %d:\n%s", port, p.out.String())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("mosquitto's log (%s):\n%s", path, p.out.String())
		}
	})
	return p
}

// grep returns the lines of s containing sub.
func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
