package deploy

import (
	"bufio"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const (
	unitFile   = "systemd/vigil.service"
	unitConfig = "systemd/vigil.yaml"
	// credDir is $CREDENTIALS_DIRECTORY of a system unit named vigil.service.
	credDir = "/run/credentials/vigil.service/"
)

// unit is a parsed unit file: section → key → values in order (a key may
// repeat, as LoadCredential= and SystemCallFilter= do).
type unit map[string]map[string][]string

func parseUnit(t *testing.T, text string) unit {
	t.Helper()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, `\`) {
				t.Fatalf("%s:%d: %q is not key=value in a section", unitFile, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// one returns the single value of a key, failing when it is not set once.
func (u unit) one(t *testing.T, section, key string) string {
	t.Helper()
	vs := u[section][key]
	if len(vs) != 1 {
		t.Fatalf("%s: [%s] %s= is set %d times; want once", unitFile, section, key, len(vs))
	}
	return vs[0]
}

// unitSettings is what the tests read from deploy/systemd/vigil.yaml.
type unitSettings struct {
	MQTT struct {
		PasswordFile string `yaml:"password_file"`
		TLS          struct {
			CAFile   string `yaml:"ca_file"`
			CertFile string `yaml:"cert_file"`
			KeyFile  string `yaml:"key_file"`
		} `yaml:"tls"`
	} `yaml:"mqtt"`
	Alerts struct {
		Journal struct {
			Dir string `yaml:"dir"`
		} `yaml:"journal"`
		DeadLetter   string        `yaml:"dead_letter"`
		DrainTimeout time.Duration `yaml:"drain_timeout"`
		Outputs      []struct {
			Type string `yaml:"type"`
			Path string `yaml:"path"`
		} `yaml:"outputs"`
	} `yaml:"alerts"`
	State struct {
		File       string `yaml:"file"`
		Encryption struct {
			KeyFile string `yaml:"key_file"`
		} `yaml:"encryption"`
	} `yaml:"state"`
	Pipeline struct {
		DrainTimeout time.Duration `yaml:"drain_timeout"`
	} `yaml:"pipeline"`
}

// TestSystemdUnit checks deploy/systemd/vigil.service with systemd's own
// tools and against its vigil.yaml: systemd-analyze verify finds nothing to
// say (unknown keys are only warnings there, so any output fails), the
// offline security review scores it at most 2.0 ("OK"), every credential the
// unit loads is what the configuration reads from $CREDENTIALS_DIRECTORY and
// the other way round, everything Vigil writes is in a directory the unit
// makes writable (ProtectSystem=strict makes the rest read-only), the stop
// timeout covers both drains, and vigil config check accepts the file.
func TestSystemdUnit(t *testing.T) {
	text := readFile(t, unitFile)
	u := parseUnit(t, text)
	svc := "Service"

	var cfg unitSettings
	if err := yaml.Unmarshal([]byte(readFile(t, unitConfig)), &cfg); err != nil {
		t.Fatalf("%s: %v", unitConfig, err)
	}

	t.Run("credentials", func(t *testing.T) {
		var loaded []string
		for _, v := range u[svc]["LoadCredential"] {
			id, src, ok := strings.Cut(v, ":")
			if !ok || !strings.HasPrefix(src, "/etc/vigil/credentials/") {
				t.Errorf("LoadCredential=%s: want ID:/etc/vigil/credentials/FILE (root-only, outside the readable /etc/vigil)", v)
			}
			loaded = append(loaded, id)
		}
		var read []string
		for key, p := range map[string]string{
			"mqtt.password_file":        cfg.MQTT.PasswordFile,
			"mqtt.tls.key_file":         cfg.MQTT.TLS.KeyFile,
			"state.encryption.key_file": cfg.State.Encryption.KeyFile,
		} {
			id, ok := strings.CutPrefix(p, credDir)
			if !ok {
				t.Errorf("%s: %s is %q; want a file in %s (a credential, not a readable file)", unitConfig, key, p, credDir)
				continue
			}
			read = append(read, id)
		}
		slices.Sort(loaded)
		slices.Sort(read)
		if !slices.Equal(loaded, read) {
			t.Errorf("the unit loads credentials %q but %s reads %q", loaded, unitConfig, read)
		}
	})

	t.Run("writable directories", func(t *testing.T) {
		if u.one(t, svc, "ProtectSystem") != "strict" {
			t.Fatal("want ProtectSystem=strict")
		}
		writable := map[string]string{
			"StateDirectory": "/var/lib/", "LogsDirectory": "/var/log/",
		}
		var dirs []string
		for key, root := range writable {
			dirs = append(dirs, root+u.one(t, svc, key)+"/")
		}
		check := func(key, p string) {
			for _, d := range dirs {
				if strings.HasPrefix(filepath.Clean(p)+"/", d) {
					return
				}
			}
			t.Errorf("%s: %s is %q, outside the unit's writable directories %q", unitConfig, key, p, dirs)
		}
		check("alerts.journal.dir", cfg.Alerts.Journal.Dir)
		check("alerts.dead_letter", cfg.Alerts.DeadLetter)
		check("state.file", cfg.State.File)
		for i, o := range cfg.Alerts.Outputs {
			if o.Type == "file" {
				check(fmt.Sprintf("alerts.outputs[%d].path", i), o.Path)
			}
		}
		if wd := u.one(t, svc, "WorkingDirectory"); !slices.Contains(dirs, wd+"/") {
			t.Errorf("WorkingDirectory=%s; want the state directory (relative defaults land there)", wd)
		}
	})

	t.Run("commands", func(t *testing.T) {
		run := u.one(t, svc, "ExecStart")
		prog, _, _ := strings.Cut(run, " ")
		check := prog + " config check " + strings.TrimPrefix(run, prog+" run --config ")
		if !strings.HasPrefix(run, prog+" run --config /etc/vigil/") {
			t.Fatalf("ExecStart=%s; want %s run --config /etc/vigil/…", run, prog)
		}
		if pre := u[svc]["ExecStartPre"]; !slices.Equal(pre, []string{check}) {
			t.Errorf("ExecStartPre=%q; want %q (the configuration checked with the service's credentials)", pre, check)
		}
		if rl := u[svc]["ExecReload"]; !slices.Equal(rl, []string{check, "/bin/kill -HUP $MAINPID"}) {
			t.Errorf("ExecReload=%q; want the check, then SIGHUP (Vigil reloads its configuration on SIGHUP)", rl)
		}
	})

	t.Run("stop timeout", func(t *testing.T) {
		stop, err := time.ParseDuration(strings.ReplaceAll(u.one(t, svc, "TimeoutStopSec"), "min", "m"))
		if err != nil {
			t.Fatalf("TimeoutStopSec: %v", err)
		}
		// Both drains, then the final snapshot and the disconnect.
		need := cfg.Pipeline.DrainTimeout + cfg.Alerts.DrainTimeout + 15*time.Second
		if cfg.Pipeline.DrainTimeout == 0 || cfg.Alerts.DrainTimeout == 0 || stop < need {
			t.Errorf("TimeoutStopSec=%s; want at least pipeline.drain_timeout (%s) + alerts.drain_timeout (%s) + 15s for the snapshot",
				stop, cfg.Pipeline.DrainTimeout, cfg.Alerts.DrainTimeout)
		}
	})

	bin := buildVigil(t)
	t.Run("config check", func(t *testing.T) {
		// The files it names are on the target machine, not here.
		code, out, errs := runTool(t, bin, "config", "check", "--files=false", unitConfig)
		if code != 0 || !strings.Contains(out, "ok") {
			t.Errorf("vigil config check %s: exit %d, %s%s", unitConfig, code, out, errs)
		}
		// An invalid configuration exits with the status the unit does not
		// restart on: a restart loop cannot fix it.
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		writeFile(t, bad, "pipeline: {workers: -1}\n", 0o600)
		code, _, errs = runTool(t, bin, "config", "check", bad)
		if want := u.one(t, svc, "RestartPreventExitStatus"); strconv.Itoa(code) != want {
			t.Errorf("vigil config check of an invalid file: exit %d (%s); the unit's RestartPreventExitStatus=%s", code, strings.TrimSpace(errs), want)
		}
	})

	t.Run("systemd-analyze", func(t *testing.T) {
		analyze := requireTool(t, "systemd-analyze", "/usr/bin/systemd-analyze", "/bin/systemd-analyze")
		// verify needs the programs to exist: the copy runs the binary
		// just built.
		prog, _, _ := strings.Cut(u.one(t, svc, "ExecStart"), " ")
		copyPath := filepath.Join(t.TempDir(), "vigil.service")
		writeFile(t, copyPath, strings.ReplaceAll(text, "="+prog+" ", "="+bin+" "), 0o644)
		code, out, errs := runTool(t, analyze, "verify", "--man=false", copyPath)
		var said []string
		for _, l := range strings.Split(out+errs, "\n") {
			if strings.Contains(l, "vigil.service") {
				said = append(said, l)
			}
		}
		if code != 0 || len(said) > 0 {
			t.Errorf("systemd-analyze verify: exit %d:\n%s", code, strings.Join(said, "\n"))
		}
		code, out, errs = runTool(t, analyze, "security", "--offline=true", "--threshold=20", copyPath)
		if code != 0 {
			var worst []string
			for _, l := range strings.Split(out+errs, "\n") {
				if strings.Contains(l, "✗") || strings.Contains(l, "Overall") {
					worst = append(worst, l)
				}
			}
			t.Errorf("systemd-analyze security: exit %d (exposure above 2.0):\n%s", code, strings.Join(worst, "\n"))
		}
	})
}
