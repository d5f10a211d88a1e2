package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/sim"
)

var update = flag.Bool("update", false, "rewrite golden files")

const (
	fixtureLog    = "../../fixtures/plant.log"
	fixtureLabels = "../../fixtures/plant.labels.json"
	malformedLog  = "../../fixtures/malformed.log"
	sharedNAB     = "../../../shared/datasets/nab"
)

// testEnv returns an env whose output goes to buffers.
func testEnv() (*env, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, log: slog.New(slog.DiscardHandler)}, &out, &errb
}

// runCLI runs the command line and returns exit code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	e, out, errb := testEnv()
	code := run(context.Background(), args, e)
	return code, out.String(), errb.String()
}

func readAlerts(t *testing.T, text string) []pipeline.Alert {
	t.Helper()
	var as []pipeline.Alert
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var a pipeline.Alert
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatalf("alert line %q does not parse: %v", sc.Text(), err)
		}
		as = append(as, a)
	}
	return as
}

// TestReplayGolden replays each case under testdata/golden and compares the
// alerts (and dead letters, where the case has them) with the expected files.
// Run with -update to rewrite them after a deliberate change, and review the
// diff.
func TestReplayGolden(t *testing.T) {
	cases := []struct {
		name  string
		input string
		dead  bool
	}{
		{"plant", fixtureLog, false},
		{"malformed", malformedLog, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join("testdata", "golden", tc.name)
			args := []string{"replay", "--summary", "none"}
			deadFile := filepath.Join(t.TempDir(), "dead.jsonl")
			if tc.dead {
				args = append(args, "--dead-letter", deadFile)
			}
			code, out, errs := runCLI(t, append(args, tc.input)...)
			if code != 0 {
				t.Fatalf("exit %d; stderr: %s", code, errs)
			}
			compareGolden(t, filepath.Join(dir, "alerts.jsonl"), out)
			if tc.dead {
				b, err := os.ReadFile(deadFile)
				if err != nil {
					t.Fatal(err)
				}
				compareGolden(t, filepath.Join(dir, "dead.jsonl"), string(b))
			}
		})
	}
}

func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range max(len(gl), len(wl)) {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs at line %d:\ngot  %s\nwant %s\n(%d lines; want %d; run with -update if the change is intended)", path, i+1, g, w, len(gl), len(wl))
			}
		}
	}
}

// TestReplayDeterministicAcrossWorkers: same input, byte-identical alerts,
// whatever the number of decoders and shard workers.
func TestReplayDeterministicAcrossWorkers(t *testing.T) {
	// A larger generated log than the fixture, with topics, so many devices
	// share shards and alerts of several shards interleave in every batch.
	cfg := sim.DefaultConfig()
	cfg.Devices, cfg.Anomalous, cfg.Duration, cfg.Topics, cfg.Seed = 60, 40, 20*time.Minute, true, 7
	cfg.LeadIn = 6 * time.Minute
	path := filepath.Join(t.TempDir(), "fleet.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sim.WriteLog(f, cfg); err != nil {
		t.Fatal(err)
	}
	f.Close()

	var want string
	for _, w := range []struct{ workers, decoders string }{{"1", "1"}, {"2", "1"}, {"1", "2"}, {"3", "2"}, {"8", "4"}} {
		code, out, errs := runCLI(t, "replay", "--summary", "none", "--workers", w.workers, "--decoders", w.decoders, path)
		if code != 0 {
			t.Fatalf("workers=%s: exit %d: %s", w.workers, code, errs)
		}
		if n := strings.Count(out, "\n"); n < 100 {
			t.Fatalf("workers=%s: only %d alerts; the test needs many to be meaningful", w.workers, n)
		}
		if want == "" {
			want = out
			continue
		}
		if out != want {
			t.Fatalf("workers=%s decoders=%s: output differs from workers=1 decoders=1 (%d vs %d bytes)", w.workers, w.decoders, len(out), len(want))
		}
	}
}

type label struct {
	Device string    `json:"device"`
	Kind   string    `json:"kind"`
	Detail string    `json:"detail"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
}

// TestQualityFixture: on the committed labelled fixture every injected anomaly
// is caught by an alert of its kind, within its window (plus a short grace for
// hold counts), and no alert fires outside an injection: devices without
// anomalies get none at all.
func TestQualityFixture(t *testing.T) {
	code, out, errs := runCLI(t, "replay", "--summary", "none", fixtureLog)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	b, err := os.ReadFile(fixtureLabels)
	if err != nil {
		t.Fatal(err)
	}
	var labels []label
	if err := json.Unmarshal(b, &labels); err != nil {
		t.Fatal(err)
	}
	checkQuality(t, readAlerts(t, out), labels, []string{"sensor-node-02", "sensor-node-05", "sensor-node-08", "sensor-node-11"})
}

// TestQualityGenerated repeats the quality check on larger fleets the
// simulator generates with other seeds, so the detectors are not tuned to one
// fixture.
func TestQualityGenerated(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	for _, seed := range []uint64{11, 12} {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			cfg := sim.DefaultConfig()
			cfg.Seed, cfg.Devices, cfg.Anomalous, cfg.Duration = seed, 30, 20, 90*time.Minute
			var buf bytes.Buffer
			ls, err := sim.WriteLog(&buf, cfg)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "plant.log")
			if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, errs := runCLI(t, "replay", "--summary", "none", path)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			g, err := sim.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var labels []label
			for _, l := range ls {
				labels = append(labels, label{Device: l.Device, Kind: l.Kind, Detail: l.Detail, Start: l.Start, End: l.End})
			}
			var clean []string
			for i := range cfg.Devices {
				if d := g.Device(i); !d.Anomalous {
					clean = append(clean, d.Name)
				}
			}
			checkQuality(t, readAlerts(t, out), labels, clean)
		})
	}
}

func checkQuality(t *testing.T, alerts []pipeline.Alert, labels []label, clean []string) {
	t.Helper()
	if len(labels) < 10 {
		t.Fatalf("only %d labels; the fixture should inject more", len(labels))
	}
	const grace = 30 * time.Second // hold counts and CUSUM build-up
	caught := 0
	for _, l := range labels {
		hit := false
		for _, a := range alerts {
			at := time.Unix(0, a.Time)
			if a.State == pipeline.Firing && a.Device == l.Device && a.Kind == l.Kind &&
				!at.Before(l.Start.Add(-2*time.Second)) && !at.After(l.End.Add(grace)) {
				hit = true
				break
			}
		}
		if hit {
			caught++
		} else {
			t.Errorf("missed: %s %s (%s) %s – %s", l.Device, l.Kind, l.Detail, l.Start.Format(time.TimeOnly), l.End.Format(time.TimeOnly))
		}
	}
	falseAlarms := 0
	for _, a := range alerts {
		if a.State != pipeline.Firing {
			continue
		}
		at := time.Unix(0, a.Time)
		inWindow := false
		for _, l := range labels {
			if a.Device == l.Device && !at.Before(l.Start.Add(-5*time.Second)) && !at.After(l.End.Add(time.Minute)) {
				inWindow = true
				break
			}
		}
		if !inWindow {
			falseAlarms++
			t.Errorf("false alarm: %s %s at %s: %s", a.Device, a.Detector, at.Format(time.TimeOnly), a.Message)
		}
	}
	cleanSet := map[string]bool{}
	for _, c := range clean {
		cleanSet[c] = true
	}
	for _, a := range alerts {
		if cleanSet[a.Device] {
			t.Errorf("clean device %s got an alert: %s", a.Device, a.Message)
		}
	}
	t.Logf("%d/%d injected anomalies caught, %d false alarms, %d alert records", caught, len(labels), falseAlarms, len(alerts))
}

// sharedDir returns a path under ../shared, skipping when it is absent
// (a user's fresh clone) and failing when it is absent in CI.
func sharedDir(t *testing.T, rel string) string {
	t.Helper()
	p := filepath.Join(sharedNAB, rel)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing in CI: %v", p, err)
		}
		t.Skipf("%s not present (it lives in ../shared beside the checkout)", p)
	}
	return p
}

// TestQualityNABNoAnomaly: the NAB series that contain no anomaly (flat, noisy,
// daily cycles with and without noise, a square wave) raise no alert at all.
func TestQualityNABNoAnomaly(t *testing.T) {
	dir := sharedDir(t, "data/artificialNoAnomaly")
	files, err := filepath.Glob(filepath.Join(dir, "*.csv"))
	if err != nil || len(files) != 5 {
		t.Fatalf("want the 5 NAB no-anomaly files, got %d (%v)", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			code, out, errs := runCLI(t, "replay", "--summary", "json", f)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			if out != "" {
				t.Errorf("false alarms on a series without anomalies:\n%s", out)
			}
			var sum struct {
				Messages uint64            `json:"messages"`
				Decoded  uint64            `json:"decoded"`
				Rejected map[string]uint64 `json:"rejected"`
			}
			if err := json.Unmarshal([]byte(errs), &sum); err != nil {
				t.Fatalf("summary %q: %v", errs, err)
			}
			if sum.Messages != 4032 || sum.Decoded != 4032 {
				t.Errorf("messages %d, decoded %d; want 4032 and 4032 (rejected %v)", sum.Messages, sum.Decoded, sum.Rejected)
			}
		})
	}
}

// TestQualityNABMachineTemperature: the real industrial series with a known
// failure is caught (an alert inside one of its labelled windows).
func TestQualityNABMachineTemperature(t *testing.T) {
	f := sharedDir(t, "data/realKnownCause/machine_temperature_system_failure.csv")
	b, err := os.ReadFile(filepath.Join(sharedNAB, "labels/combined_windows.json"))
	if err != nil {
		t.Fatal(err)
	}
	var windows map[string][][2]string
	if err := json.Unmarshal(b, &windows); err != nil {
		t.Fatal(err)
	}
	ws := windows["realKnownCause/machine_temperature_system_failure.csv"]
	if len(ws) == 0 {
		t.Fatal("no windows for the machine temperature series")
	}
	code, out, errs := runCLI(t, "replay", "--summary", "none", f)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	alerts := readAlerts(t, out)
	const layout = "2006-01-02 15:04:05.000000"
	caught := 0
	for _, w := range ws {
		start, err1 := time.Parse(layout, w[0])
		end, err2 := time.Parse(layout, w[1])
		if err1 != nil || err2 != nil {
			t.Fatalf("window %v: %v %v", w, err1, err2)
		}
		for _, a := range alerts {
			at := time.Unix(0, a.Time)
			if a.State == pipeline.Firing && !at.Before(start) && !at.After(end) {
				caught++
				break
			}
		}
	}
	t.Logf("%d of %d labelled windows caught; %d alert records", caught, len(ws), len(alerts))
	if caught < len(ws)/2 {
		t.Errorf("caught %d of %d failure windows; want at least half", caught, len(ws))
	}
}

// TestReplayLabelsFile scores the fixture against its labels: the table and
// the JSON report say every window was detected without false positives.
func TestReplayLabelsFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "eval.json")
	code, _, errs := runCLI(t, "replay", "--summary", "none", "--alerts", os.DevNull, "--labels", fixtureLabels,
		"--eval-before", "2s", "--eval-json", out, fixtureLog)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(errs, "EVENTS") || !strings.Contains(errs, "NAB") {
		t.Errorf("no evaluation table on stderr:\n%s", errs)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Overall struct {
			Events struct {
				Windows, Detected, FP int
			}
		}
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("eval JSON: %v\n%s", err, b)
	}
	if e := rep.Overall.Events; e.Windows != 47 || e.Detected != 47 || e.FP != 0 {
		t.Errorf("overall events %+v; want 47 windows, 47 detected, 0 false positives", e)
	}
}

// TestReplayLabelsStatusAndColumn: ground truth from the devices' own status
// field, and from a CSV label column.
func TestReplayLabelsStatusAndColumn(t *testing.T) {
	code, _, errs := runCLI(t, "replay", "--summary", "none", "--alerts", os.DevNull, "--labels", "status", fixtureLog)
	if code != 0 {
		t.Fatalf("status labels: exit %d: %s", code, errs)
	}
	// The fixture's one status fault is the only status-labelled window, and
	// the status alert detects it.
	if !regexp.MustCompile(`(?m)^all\s+1\s+1\s+1\.000`).MatchString(errs) {
		t.Errorf("status labels: want 1 window detected:\n%s", errs)
	}

	dir := t.TempDir()
	csv := "timestamp,value,label\n"
	for i := range 600 {
		v, l := 20.0+float64(i%3)*0.1, 0
		if i >= 500 && i < 505 {
			v, l = 90, 1 // a labelled spike
		}
		csv += fmt.Sprintf("2026-11-21 10:%02d:%02d,%g,%d\n", i/60, i%60, v, l)
	}
	path := filepath.Join(dir, "tank.csv")
	if err := os.WriteFile(path, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "replay", "--summary", "none", "--labels", "column", path)
	if code != 0 {
		t.Fatalf("column labels: exit %d: %s", code, errs)
	}
	if !regexp.MustCompile(`(?m)^all\s+1\s+1\s+1\.000`).MatchString(errs) {
		t.Errorf("column labels: want the labelled spike detected:\n%s\nalerts:\n%s", errs, out)
	}

	// The same as a spreadsheet in a decimal-comma locale exports it
	// (";"-separated), with its own names for the time and label columns.
	semi := strings.NewReplacer(",", ";", "timestamp", "datetime", "label", "anomaly").Replace(csv)
	spath := filepath.Join(dir, "tank-semi.csv")
	if err := os.WriteFile(spath, []byte(semi), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runCLI(t, "replay", "--summary", "none", "--labels", "column", "--csv-time", "datetime", "--csv-label", "anomaly", spath)
	if code != 0 || !regexp.MustCompile(`(?m)^all\s+1\s+1\s+1\.000`).MatchString(errs) || !strings.Contains(errs, "600 readings") {
		t.Errorf("semicolon CSV: exit %d; want its 600 readings and the labelled spike detected:\n%s", code, errs)
	}
	for sep, want := range map[string]string{"ab": `--csv-sep "ab": want one character or "tab"`, `"`: `cannot separate fields`} {
		code, _, errs = runCLI(t, "replay", "--summary", "none", "--csv-sep", sep, spath)
		if code != 2 || !strings.Contains(errs, want) {
			t.Errorf("--csv-sep %s: exit %d, %q; want a usage error saying %q", sep, code, errs, want)
		}
	}
}

func TestReplayLabelsErrors(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other.json")
	os.WriteFile(other, []byte(`[{"device":"press-9","start":"2026-11-21T10:00:00Z","end":"2026-11-21T10:01:00Z"}]`), 0o644)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`[{"device":"press-9","start":"yesterday","end":"2026-11-21T10:01:00Z"}]`), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--labels", other}, 1, `none of the 1 labelled devices appear in the data (e.g. "press-9"`},
		{[]string{"--labels", bad}, 1, "yesterday"},
		{[]string{"--labels", "/nonexistent.json"}, 2, "--labels"},
		{[]string{"--eval-json", "x.json"}, 2, "--eval-json needs --labels"},
	} {
		code, _, errs := runCLI(t, append(append([]string{"replay", "--summary", "none", "--alerts", os.DevNull}, tc.args...), fixtureLog)...)
		if code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
}

// TestReplayReport: --report writes one self-contained HTML file with the
// evaluation and a chart per device signal.
func TestReplayReport(t *testing.T) {
	out := filepath.Join(t.TempDir(), "report.html")
	code, _, errs := runCLI(t, "replay", "--summary", "none", "--alerts", os.DevNull, "--labels", fixtureLabels,
		"--report", out, "--report-devices", "sensor-node-0[1-3]", fixtureLog)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	if n := strings.Count(html, "<svg"); n != 9 {
		t.Errorf("%d charts; want 9 (3 devices × 3 signals)", n)
	}
	for _, want := range []string{"sensor-node-01", "sensor-node-03", "Evaluation against the labels", "21"} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(html, "<script src") || strings.Contains(html, `src="http`) {
		t.Error("report loads something from outside")
	}
}

// TestReplayReportConfig: the report summarises the run's configuration:
// the file, the inputs, the workers, the classes, the key detector
// settings and what differs from the defaults.
func TestReplayReportConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "plant.yaml")
	text := "detectors:\n  overpressure:\n    spike: {z: 5}\nclasses:\n  - name: presses\n    devices: [sensor-node-01]\n"
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "report.html")
	code, _, errs := runCLI(t, "replay", "--summary", "none", "--alerts", os.DevNull, "--workers", "2", "--config", cfg,
		"--report", out, "--report-devices", "sensor-node-01", fixtureLog)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), `<section class="card" id="configuration">`)
	if !ok {
		t.Fatal("no configuration section")
	}
	sec, _, _ = strings.Cut(sec, "</section>")
	for _, want := range []string{
		"<th>Configuration file</th><td>" + cfg + "</td>",
		"<th>Input files</th><td>" + fixtureLog + "</td>",
		"<th>Pipeline</th><td>2 shard workers, decoders: one per CPU</td>",
		"<th>Classes</th><td>presses (sensor-node-01)</td>",
		"overpressure.spike.z: 5,",
		"<th>Changed from the defaults</th><td>overpressure.spike.z: 5 (default 6)</td>",
	} {
		if !strings.Contains(sec, want) {
			t.Errorf("configuration section lacks %q:\n%s", want, sec)
		}
	}
}

// TestTuneCLI: tune over the fixture from a deliberately bad base finds
// better settings and writes a config that replay accepts and that does
// better than the base.
func TestTuneCLI(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "tune.yaml")
	os.WriteFile(spec, []byte("objective: event_f1\nsearch: grid\nbefore: 2s\nafter: 30s\nparameters:\n  overpressure.spike.z: {values: [6, 40]}\n  vibration.jump.z: {values: [6, 40]}\n"), 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	// A base that misses things: spike and jump thresholds far too high,
	// rise and rate checks out of reach, no relation check to see what
	// they miss.
	os.WriteFile(bad, []byte("detectors:\n  overpressure:\n    spike: {z: 40}\n    rise: {h: 1000}\n    rate: {factor: 1000}\n  vibration:\n    jump: {z: 40}\n    elevation: {h: 1000}\n    zones: {ab: 50, bc: 60, cd: 70}\n  relation: {enabled: false}\n"), 0o644)
	best := filepath.Join(dir, "best.yaml")
	code, out, errs := runCLI(t, "tune", "--spec", spec, "--labels", fixtureLabels, "--config", bad, "--out", best, fixtureLog)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "best: trial") {
		t.Errorf("no best line in the table:\n%s", out)
	}
	b, err := os.ReadFile(best)
	if err != nil {
		t.Fatal(err)
	}
	// The tuned thresholds are the defaults, so the file leaves them out
	// (it writes only keys that differ from the defaults).
	if strings.Contains(string(b), "z: 40") || !strings.Contains(string(b), "tuned: overpressure.spike.z 6 (base 40)") {
		t.Errorf("best config keeps the bad thresholds:\n%s", b)
	}
	recall := func(cfg string) string {
		_, _, errs := runCLI(t, "replay", "--summary", "none", "--alerts", os.DevNull, "--config", cfg, "--labels", fixtureLabels, "--eval-before", "2s", fixtureLog)
		m := regexp.MustCompile(`(?m)^all\s+(\d+)\s+(\d+)`).FindStringSubmatch(errs)
		if m == nil {
			t.Fatalf("no evaluation:\n%s", errs)
		}
		return m[2] + "/" + m[1]
	}
	if before, after := recall(bad), recall(best); before == after || after != "47/47" {
		t.Errorf("windows detected with the bad base %s, with the tuned config %s; want 47/47 after tuning and fewer before", before, after)
	}
	if code, _, errs := runCLI(t, "tune", "--spec", spec, fixtureLog); code != 2 || !strings.Contains(errs, "--labels is required") {
		t.Errorf("tune without labels: exit %d, %q; want a usage error", code, errs)
	}
}

// TestQualityNABTuned replays all of NAB with the tuned configuration in
// docs/ (record and daily checks, folded) and holds it to the score recorded
// in docs/QUALITY.md, with no alert on the five series without anomalies.
func TestQualityNABTuned(t *testing.T) {
	dir := sharedDir(t, "data")
	files, err := filepath.Glob(filepath.Join(dir, "*", "*.csv"))
	if err != nil || len(files) != 58 {
		t.Fatalf("want the 58 NAB files, got %d (%v)", len(files), err)
	}
	for _, cfg := range []struct {
		file string
		min  float64 // NAB standard
	}{
		{"../../docs/nab-base.yaml", 65},
		{"../../docs/nab-tuned.yaml", 69},
	} {
		t.Run(filepath.Base(cfg.file), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "eval.json")
			args := append([]string{"replay", "--config", cfg.file, "--summary", "none", "--alerts", os.DevNull,
				"--labels", filepath.Join(sharedNAB, "labels/combined_windows.json"), "--eval-json", out}, files...)
			if code, _, errs := runCLI(t, args...); code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var rep struct {
				Overall struct {
					NAB struct {
						Detected int `json:"detected"`
						Scores   []struct {
							Profile string  `json:"profile"`
							Score   float64 `json:"score"`
						} `json:"scores"`
					} `json:"nab"`
				} `json:"overall"`
				PerDevice []struct {
					Device string `json:"device"`
					Events struct {
						Episodes int `json:"episodes"`
					} `json:"events"`
				} `json:"per_device"`
			}
			if err := json.Unmarshal(b, &rep); err != nil {
				t.Fatal(err)
			}
			nab := rep.Overall.NAB
			if len(nab.Scores) == 0 || nab.Scores[0].Profile != "standard" {
				t.Fatalf("no standard NAB score in %s", b[:min(len(b), 300)])
			}
			t.Logf("NAB standard %.1f, %d windows detected", nab.Scores[0].Score, nab.Detected)
			if nab.Scores[0].Score < cfg.min {
				t.Errorf("NAB standard %.1f; want at least %.0f", nab.Scores[0].Score, cfg.min)
			}
			quiet := map[string]bool{"art_daily_no_noise": true, "art_daily_perfect_square_wave": true,
				"art_daily_small_noise": true, "art_flatline": true, "art_noisy": true}
			seen := 0
			for _, d := range rep.PerDevice {
				if quiet[d.Device] {
					seen++
					if d.Events.Episodes != 0 {
						t.Errorf("%s (no anomaly): %d alert episodes; want none", d.Device, d.Events.Episodes)
					}
				}
			}
			if seen != len(quiet) {
				t.Errorf("found %d of the %d no-anomaly series in the report", seen, len(quiet))
			}
		})
	}
}
