package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	natsclient "github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-iot/vigil/internal/natstest"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/jetstream"
)

// sprayFleet is the fleet section of the spray test: a short learning
// period so the test stays short.
const sprayFleet = "fleet:\n  learning: 2m\n  window: 30s\n  max_new: 5\n"

// writeSprayLog writes 4 minutes of 20 devices at 1 Hz, and 12 device IDs
// never seen before, one a second, from minute 3. It returns the path and
// when the burst starts.
func writeSprayLog(t *testing.T) (string, time.Time) {
	t.Helper()
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	burst := t0.Add(3 * time.Minute)
	path := filepath.Join(t.TempDir(), "spray.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	line := func(at time.Time, dev string, i int) {
		fmt.Fprintf(w, `{"timestamp":%q,"node_id":%q,"data":{"p":%.2f,"t":%.1f,"v":%.2f},"status":0}`+"\n",
			at.Format(time.RFC3339Nano), dev, 4.2+0.01*float64(i%7), 61.0+0.1*float64(i%5), 2.7+0.01*float64(i%3))
	}
	for s := range 240 {
		at := t0.Add(time.Duration(s) * time.Second)
		for d := range 20 {
			line(at.Add(time.Duration(d)*10*time.Millisecond), fmt.Sprintf("dev-%02d", d+1), s+d)
		}
		if k := s - 180; k >= 0 && k < 12 {
			line(at.Add(500*time.Millisecond), fmt.Sprintf("spray-%02d", k+1), s)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path, burst
}

// sprayAlerts reads the traffic.spray alerts of alert files.
func sprayAlerts(t *testing.T, paths ...string) []pipeline.Alert {
	t.Helper()
	var out []pipeline.Alert
	for _, p := range paths {
		f, err := os.Open(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var a pipeline.Alert
			if json.Unmarshal(sc.Bytes(), &a) == nil && a.Kind == "traffic.spray" {
				out = append(out, a)
			}
		}
		f.Close()
	}
	return out
}

// TestClusterFleetSpray: identity spraying (12 new device IDs in 12 s,
// after a learning period in which 20 devices appeared) is caught by the
// scale-out's fleet judge summing the partitions' reports, with 1 worker
// and with 2 (the judge on one, partitions on both) alike: one episode,
// the same event ID, fired within one report window of where a single
// Vigil fires it; the 20 devices of the learning period raise nothing.
func TestClusterFleetSpray(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	natstest.Require(t)
	bin := buildVigil(t)
	logPath, burst := writeSprayLog(t)

	single := filepath.Join(t.TempDir(), "single.jsonl")
	cmd := exec.Command(bin, "replay", "--config", writeConfig(t, "single.yaml", sprayFleet), "--alerts", single, logPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	ref := sprayAlerts(t, single)
	if len(ref) != 2 || ref[0].State != pipeline.Firing || ref[1].State != pipeline.Resolved {
		t.Fatalf("single Vigil: spray alerts %+v; want one firing and its resolution", ref)
	}
	if started := time.Unix(0, ref[0].Started); started.Before(burst) {
		t.Fatalf("single Vigil: spray fired at %s, before the burst at %s", started, burst)
	}

	ids := map[int]string{}
	for _, n := range []int{1, 2} {
		t.Run("workers="+strconv.Itoa(n), func(t *testing.T) {
			const partitions = 4
			srv, js := startScaleOut(t, jetstream.Config{Partitions: partitions})
			last := publishFile(t, js, logPath, partitions)
			var ws []*clusterWorker
			var files []string
			for i := range n {
				w := startClusterWorkerWith(t, bin, srv.URL(), "vigil-", "w"+strconv.Itoa(i+1), "",
					"  partitions: 4\n  replicas: 1\n", sprayFleet)
				ws, files = append(ws, w), append(files, w.alerts)
			}
			done := waitUntilTrue(60*time.Second, func() bool {
				for p, seq := range last {
					mark := 0.0
					for _, w := range ws {
						mark = max(mark, w.metric(`vigil_partition_mark{partition="`+strconv.Itoa(p)+`"}`))
					}
					if uint64(mark) < seq {
						return false
					}
				}
				return len(sprayAlerts(t, files...)) >= 2
			})
			reports, windows := sumMetric(ws, "vigil_fleet_reports_total"), sumMetric(ws, "vigil_fleet_windows_total")
			for _, w := range ws {
				w.stop(t)
			}
			got := sprayAlerts(t, files...)
			if !done || len(got) != 2 || got[0].State != pipeline.Firing || got[1].State != pipeline.Resolved {
				t.Fatalf("%d workers: spray alerts %+v; want one firing and its resolution (%v reports published, %v windows judged)", n, got, reports, windows)
			}
			d := time.Duration(got[0].Started - ref[0].Started)
			if d < 0 || d > 10*time.Second {
				t.Errorf("spray fired at %s, %s after a single Vigil; want within one report window (5 s)",
					time.Unix(0, got[0].Started).UTC(), d)
			}
			ids[n] = got[0].EventID()
			t.Logf("%d workers: spray fired at %s (single Vigil: %s), %v new devices; %v reports published, %v windows judged",
				n, time.Unix(0, got[0].Started).UTC(), time.Unix(0, ref[0].Started).UTC(), got[0].Value, reports, windows)
		})
	}
	if ids[1] != ids[2] {
		t.Errorf("spray event IDs differ: 1 worker %q, 2 workers %q", ids[1], ids[2])
	}
}

// startScaleOut starts a nats-server and sets the scale-out up on it.
func startScaleOut(t *testing.T, cfg jetstream.Config) (*natstest.Server, natsjs.JetStream) {
	t.Helper()
	srv := natstest.Start(t)
	js := natstest.JetStream(t, srv.URL())
	if err := jetstream.Setup(t.Context(), js, cfg); err != nil {
		t.Fatal(err)
	}
	return srv, js
}

func sumMetric(ws []*clusterWorker, name string) float64 {
	s := 0.0
	for _, w := range ws {
		s += w.metric(name)
	}
	return s
}

// publishFile publishes every line of path on its device's partition and
// returns the last stream sequence of each partition.
func publishFile(t *testing.T, js natsjs.JetStream, path string, partitions int) map[int]uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	last := map[int]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m struct {
			Node string `json:"node_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		ack, err := js.PublishMsg(t.Context(), &natsclient.Msg{Subject: jetstream.Subject(m.Node, partitions), Data: append([]byte(nil), sc.Bytes()...)})
		if err != nil {
			t.Fatal(err)
		}
		p := jetstream.PartitionOf(m.Node, partitions)
		last[p] = max(last[p], ack.Sequence)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return last
}

// TestClusterFleetJudgeMoves: the fleet judge moves with partition 0. A
// worker judges the stream up to after a spray fired; then it stops
// (SIGTERM: hand-over) or dies (SIGKILL, after a checkpoint covered the
// firing) and a second worker, owning everything, judges the rest. The
// new judge rebuilds the fleet's state from the fleet stream without
// raising the firing again, and raises the resolution: one episode, one
// firing and one resolution across both workers' files.
func TestClusterFleetJudgeMoves(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	natstest.Require(t)
	bin := buildVigil(t)
	logPath, burst := writeSprayLog(t)
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// Part one ends 40 s after the burst began: the spray has fired, not
	// yet resolved.
	var first, second []byte
	for _, l := range bytes.SplitAfter(b, []byte("\n")) {
		var m struct {
			Timestamp time.Time `json:"timestamp"`
		}
		if len(l) == 0 || json.Unmarshal(l, &m) != nil {
			continue
		}
		if m.Timestamp.Before(burst.Add(40 * time.Second)) {
			first = append(first, l...)
		} else {
			second = append(second, l...)
		}
	}
	dir := t.TempDir()
	p1, p2 := filepath.Join(dir, "one.log"), filepath.Join(dir, "two.log")
	if err := os.WriteFile(p1, first, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p2, second, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			const partitions = 4
			srv, js := startScaleOut(t, jetstream.Config{Partitions: partitions, Lease: 3 * time.Second})
			layout := "  partitions: 4\n  replicas: 1\n"
			w1 := startClusterWorkerWith(t, bin, srv.URL(), "vigil-", "w1", "", layout, sprayFleet)
			publishFile(t, js, p1, partitions)
			if !waitUntilTrue(60*time.Second, func() bool { return len(sprayAlerts(t, w1.alerts)) == 1 }) {
				t.Fatalf("w1: spray alerts %+v; want the firing", sprayAlerts(t, w1.alerts))
			}
			// A checkpoint of partition 0 after the firing (interval 1s).
			ck := w1.metric("vigil_partition_checkpoints_total")
			if !waitUntilTrue(20*time.Second, func() bool { return w1.metric("vigil_partition_checkpoints_total") >= ck+8 }) {
				t.Fatalf("w1 wrote %v checkpoints, %v before; log:\n%s", w1.metric("vigil_partition_checkpoints_total"), ck, tailLines(w1.logs.String(), 20))
			}
			w2 := startClusterWorkerWith(t, bin, srv.URL(), "vigil-", "w2", "", layout, sprayFleet)
			if sig == syscall.SIGTERM {
				w1.stop(t)
			} else {
				w1.cmd.Process.Signal(sig)
				<-w1.exited
			}
			if !waitUntilTrue(30*time.Second, func() bool { return w2.metric("vigil_partitions_owned") == partitions }) {
				t.Fatalf("w2 owns %v partitions after w1 left; want %d", w2.metric("vigil_partitions_owned"), partitions)
			}
			publishFile(t, js, p2, partitions)
			if !waitUntilTrue(60*time.Second, func() bool { return len(sprayAlerts(t, w2.alerts)) >= 1 }) {
				t.Fatalf("w2 raised no spray alert after the burst ended; log:\n%s", tailLines(w2.logs.String(), 30))
			}
			time.Sleep(time.Second) // a re-raised firing would be written by now
			w2.stop(t)
			one, two := sprayAlerts(t, w1.alerts), sprayAlerts(t, w2.alerts)
			if len(one) != 1 || one[0].State != pipeline.Firing {
				t.Fatalf("w1 wrote %+v; want the firing alone", one)
			}
			if len(two) != 1 || two[0].State != pipeline.Resolved || two[0].EventID() == one[0].EventID() || two[0].ID != one[0].ID {
				t.Fatalf("w2 wrote %+v; want only the resolution of w1's episode %s", two, one[0].ID)
			}
			t.Logf("%s: w1 fired %s at %s; w2 resolved it at %s", sig, one[0].ID,
				time.Unix(0, one[0].Started).UTC().Format(time.TimeOnly), time.Unix(0, two[0].Time).UTC().Format(time.TimeOnly))
		})
	}
}
