package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline/sim"
)

// TestSimulateBrokerCredentials: a --broker URL with a password, parsable
// or not, is refused as a usage error that shows it masked; neither the
// error nor a log line repeats the password.
func TestSimulateBrokerCredentials(t *testing.T) {
	const secret = "s3cret-pw"
	for _, tc := range []struct{ url, want string }{
		{"mqtt://vigil:p@" + secret + "@127.0.0.1:port/%zz", `--broker: credentials must not be part of the URL ("mqtt://vigil:xxxxx@127.0.0.1:port/%zz")`},
		{"mqtts://vigil:" + secret + "@127.0.0.1:1", `--broker: credentials must not be part of the URL ("mqtts://vigil:xxxxx@127.0.0.1:1")`},
		{"vigil:" + secret + "@127.0.0.1:1883", `--broker: credentials must not be part of the URL ("vigil:xxxxx@127.0.0.1:1883")`},
	} {
		var out, errb bytes.Buffer
		e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, log: slog.New(slog.NewTextHandler(&errb, nil))}
		code := run(context.Background(), []string{"simulate", "--broker", tc.url}, e)
		if code != 2 || !strings.Contains(errb.String(), tc.want) || !strings.Contains(errb.String(), "password_file or password_env") {
			t.Errorf("--broker %q: exit %d, stderr %q; want exit 2 and %q, pointing to password_file or password_env", tc.url, code, errb.String(), tc.want)
		}
		if strings.Contains(errb.String()+out.String(), secret) {
			t.Errorf("--broker %q: the output repeats the password:\n%s%s", tc.url, out.String(), errb.String())
		}
	}
}

// TestSimulateFixtureUnchanged: the documented command (`task fixtures`:
// vigil simulate --out fixtures/plant.log) still writes the committed
// fixture and its labels byte for byte, with the cycle and relation flags
// at their defaults.
func TestSimulateFixtureUnchanged(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "plant.log")
	if code, _, errs := runCLI(t, "simulate", "--out", out); code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, f := range [][2]string{{out, fixtureLog}, {filepath.Join(dir, "plant.labels.json"), fixtureLabels}} {
		got, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(f[1])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s", f[0], f[1])
		}
	}
}

// TestSimulateShapeFlags: --profile sets the cycles and relations, flags
// given explicitly override it, and the flags that need another say so.
func TestSimulateShapeFlags(t *testing.T) {
	log := func(args ...string) (string, []sim.Label) {
		t.Helper()
		out := filepath.Join(t.TempDir(), "p.log")
		code, _, errs := runCLI(t, append([]string{"simulate", "--out", out}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errs)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		lb, err := os.ReadFile(filepath.Join(filepath.Dir(out), "p.labels.json"))
		if err != nil {
			t.Fatal(err)
		}
		var ls []sim.Label
		if err := json.Unmarshal(lb, &ls); err != nil {
			t.Fatal(err)
		}
		return string(b), ls
	}
	want := func(edit func(*sim.Config)) string {
		cfg := sim.DefaultConfig()
		edit(&cfg)
		var buf bytes.Buffer
		if _, err := sim.WriteLog(&buf, cfg); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	got, labels := log("--profile", "cyclic,related", "--devices", "3", "--anomalous", "3", "--duration", "20m", "--lead-in", "2m",
		"--cycle-vibration", "7m:0.2abs@0.5", "--relation-tau", "1m")
	if w := want(func(c *sim.Config) {
		_ = sim.ApplyProfile(c, "cyclic,related")
		c.Devices, c.Anomalous, c.Duration, c.LeadIn = 3, 3, 20*time.Minute, 2*time.Minute
		c.Cycles.Vibration = sim.Cycle{Period: 7 * time.Minute, Amp: 0.2, Absolute: true, Phase: 0.5, FixedPhase: true}
		c.Relation.Tau = time.Minute
	}); got != w {
		t.Error("--profile cyclic,related with overrides: the log is not the one of the equivalent sim.Config")
	}
	kinds := map[string]bool{}
	for _, l := range labels {
		kinds[l.Kind] = true
	}
	if !kinds[sim.KindRelation] {
		t.Errorf("--profile related: no %s label in %v", sim.KindRelation, kinds)
	}
	got, _ = log("--duration", "10m", "--cycle-temperature", "20m-40m:3-4", "--relation", "p=3,t=2", "--relation-breaks",
		"--daily", "1", "--rhythm-at", "5m", "--rhythm-factor", "0.5")
	if w := want(func(c *sim.Config) {
		c.Duration = 10 * time.Minute
		c.Cycles = sim.Cycles{Temperature: sim.Cycle{Period: 20 * time.Minute, MaxPeriod: 40 * time.Minute, Amp: 3, MaxAmp: 4},
			Daily: 1, Rhythm: sim.Rhythm{At: 5 * time.Minute, Factor: 0.5, Devices: 1}}
		c.Relation = sim.Relation{Pressure: 3, Temperature: 2, Tau: sim.DefaultLoadTau, Breaks: true}
	}); got != w {
		t.Error("explicit cycle and relation flags: the log is not the one of the equivalent sim.Config")
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--profile", "wobbly"}, 2, `--profile: sim: unknown profile "wobbly"`},
		{[]string{"--cycle-pressure", "5m"}, 2, "--cycle-pressure: sim: cycle \"5m\": no amplitude"},
		{[]string{"--relation", "q=1"}, 2, `--relation: sim: relation "q=1": unknown signal "q"`},
		{[]string{"--relation-breaks"}, 2, "--relation-breaks needs --relation or --profile related"},
		{[]string{"--rhythm-factor", "2"}, 2, "--rhythm-factor needs --rhythm-at or --profile rhythm"},
		{[]string{"--rhythm-at", "1h"}, 1, "sim: Cycles.Rhythm.At needs a cycle on at least one signal"},
		{[]string{"--relation", "p=1", "--relation-breaks"}, 1, "sim: Relation.Breaks needs at least two coupled signals"},
	} {
		code, _, errs := runCLI(t, append([]string{"simulate", "--out", filepath.Join(t.TempDir(), "x.log")}, tc.args...)...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
}
