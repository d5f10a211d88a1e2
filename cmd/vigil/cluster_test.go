package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	natsclient "github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-iot/vigil/internal/natstest"
	"github.com/vigil-iot/vigil/internal/syncbuf"
	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/cluster"
	"github.com/vigil-iot/vigil/pipeline/jetstream"
)

// clusterWorker is a "vigil run --source jetstream" process.
type clusterWorker struct {
	id, metrics, alerts string
	cmd                 *exec.Cmd
	logs                *syncbuf.Buffer
	exited              chan struct{}
}

// startClusterWorker starts worker id with buckets prefixed by prefix
// (so a reference run can share the stream and nothing else); its
// alerts go to a file and, when natsOut is set, to JetStream.
func startClusterWorker(t *testing.T, bin, natsURL, prefix, id, natsOut string) *clusterWorker {
	return startClusterWorkerWith(t, bin, natsURL, prefix, id, natsOut, "  partitions: 12\n  replicas: 3\n", "")
}

// startClusterWorkerWith is startClusterWorker with the cluster section's
// partitions and replicas lines given, and extra top-level sections.
func startClusterWorkerWith(t *testing.T, bin, natsURL, prefix, id, natsOut, layout, extra string) *clusterWorker {
	t.Helper()
	dir := t.TempDir()
	w := &clusterWorker{id: id, metrics: freeAddr(t), alerts: filepath.Join(dir, "alerts.jsonl"), logs: &syncbuf.Buffer{}, exited: make(chan struct{})}
	outputs := ""
	if natsOut != "" {
		outputs = "  outputs:\n    - {name: bus, type: nats, url: \"" + natsOut + "\", jetstream: true, subject: \"vigil.alerts.{kind}\", timeout: 2s, retry: {initial: 50ms, max: 300ms}}\n"
	}
	cfg := writeConfig(t, id+".yaml", "cluster:\n  url: \""+natsURL+"\"\n"+layout+"  lease: 3s\n"+
		"  checkpoint_interval: 1s\n  worker_id: "+id+"\n"+
		"  members_bucket: "+prefix+"members\n  cluster_bucket: "+prefix+"cluster\n  checkpoints_bucket: "+prefix+"checkpoints\n"+
		"alerts:\n  journal: {dir: "+filepath.Join(dir, "journal")+"}\n  mqtt: {enabled: false}\n  file: "+w.alerts+"\n"+outputs+
		"metrics:\n  listen: "+w.metrics+"\n"+extra)
	w.cmd = exec.Command(bin, "run", "--source", "jetstream", "--config", cfg)
	w.cmd.Stdout, w.cmd.Stderr = w.logs, w.logs
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { w.cmd.Wait(); close(w.exited) }()
	t.Cleanup(func() {
		w.cmd.Process.Kill()
		<-w.exited
		if t.Failed() {
			t.Logf("worker %s log:\n%s", id, tailLines(w.logs.String(), 40))
		}
	})
	// Ready once its metrics listener serves, after the stream and
	// buckets were checked: slow while a NATS node is being replaced.
	for deadline := time.Now().Add(45 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := httpGetErr("http://" + w.metrics + "/readyz"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker %s never became ready; logs:\n%s", id, w.logs.String())
		}
	}
	return w
}

// metric reads one metric of the worker's /metrics, 0 when absent or
// the worker is gone.
func (w *clusterWorker) metric(name string) float64 {
	select {
	case <-w.exited:
		return 0
	default:
	}
	body, err := httpGetErr("http://" + w.metrics + "/metrics")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// stop sends SIGTERM and waits for a clean exit.
func (w *clusterWorker) stop(t *testing.T) {
	t.Helper()
	w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("worker %s did not stop within 60 s", w.id)
	}
	if code := w.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("worker %s exited with %d", w.id, code)
	}
}

// eventIDs reads the alert file's event IDs.
func (w *clusterWorker) eventIDs(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(w.alerts)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var ids []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var a pipeline.Alert
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			continue // the last line of a killed worker may be cut
		}
		ids = append(ids, a.EventID())
	}
	return ids
}

func tailLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// publishPlant publishes the plant fixture into the stream, each line on
// its device's partition, paced to take about d, and returns the last
// stream sequence of each partition.
func publishPlant(ctx context.Context, js natsjs.JetStream, partitions int, d time.Duration, progress func(done, total int)) (map[int]uint64, error) {
	b, err := os.ReadFile(fixtureLog)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	last := map[int]uint64{}
	const chunk = 100
	pause := d / time.Duration(len(lines)/chunk+1)
	for i := 0; i < len(lines); i += chunk {
		msgs := make([]*natsclient.Msg, 0, chunk)
		parts := make([]int, 0, chunk)
		for j, l := range lines[i:min(i+chunk, len(lines))] {
			var m struct {
				Node string `json:"node_id"`
			}
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				return nil, err
			}
			// The message ID makes a retry after a lost PubAck (a
			// node killed) not store the line twice.
			msg := &natsclient.Msg{Subject: jetstream.Subject(m.Node, partitions), Data: []byte(l), Header: natsclient.Header{}}
			msg.Header.Set(natsjs.MsgIDHeader, "plant-"+strconv.Itoa(i+j))
			msgs, parts = append(msgs, msg), append(parts, jetstream.PartitionOf(m.Node, partitions))
		}
		for j, msg := range msgs {
			for try := 0; ; try++ {
				ack, err := js.PublishMsg(ctx, msg)
				if err == nil {
					last[parts[j]] = max(last[parts[j]], ack.Sequence)
					break
				}
				if try == 100 || ctx.Err() != nil {
					return nil, err
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		progress(min(i+chunk, len(lines)), len(lines))
		time.Sleep(pause)
	}
	return last, nil
}

// TestClusterFailover is issue 14's test: a 3-node NATS cluster (R3
// stream and buckets), 3 workers over 12 partitions, the plant fixture
// published while they run; one worker is killed with SIGKILL mid-stream,
// later a NATS node too. Its partitions move to the others within the
// lease plus a margin, every message of every partition is judged (the
// final checkpoints cover each partition's last message), the alert
// episodes at the JetStream output are each there once, and the alerts
// are exactly those of a single worker that judged the same stream alone.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	c := natstest.StartCluster(t, 3)
	bin := buildVigil(t)
	js := natstest.JetStream(t, c.URL())
	ctx := t.Context()
	cfg := jetstream.Config{Partitions: 12, Replicas: 3, Lease: 3 * time.Second}
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if err = jetstream.Setup(ctx, js, cfg); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("setup: %v", err)
		}
	}
	alerts, err := js.CreateStream(ctx, natsjs.StreamConfig{Name: "ALERTS", Subjects: []string{"vigil.alerts.>"}, Replicas: 3, Duplicates: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}

	workers := []*clusterWorker{
		startClusterWorker(t, bin, c.URL(), "vigil-", "w1", c.Servers[0].URL()),
		startClusterWorker(t, bin, c.URL(), "vigil-", "w2", c.Servers[0].URL()),
		startClusterWorker(t, bin, c.URL(), "vigil-", "w3", c.Servers[0].URL()),
	}
	owned := func(ws ...*clusterWorker) int {
		n := 0
		for _, w := range ws {
			n += int(w.metric("vigil_partitions_owned"))
		}
		return n
	}
	// Rendezvous with bounded loads: 4 each, once the hand-overs made as
	// the workers joined one after the other are done.
	balanced := func() bool {
		for _, w := range workers {
			if w.metric("vigil_partitions_owned") != 4 {
				return false
			}
		}
		return true
	}
	if !waitUntilTrue(20*time.Second, balanced) {
		t.Fatalf("the 3 workers own %v, %v and %v partitions; want 4 each", workers[0].metric("vigil_partitions_owned"),
			workers[1].metric("vigil_partitions_owned"), workers[2].metric("vigil_partitions_owned"))
	}

	// The plant's hour, paced over ~12 s; w1 is killed at 40 %, a NATS
	// node at 70 %.
	victim, survivors := workers[0], workers[1:]
	moved := make(chan time.Duration, 1)
	killed, nodeDown := false, false
	last, err := publishPlant(ctx, js, 12, 12*time.Second, func(done, total int) {
		switch {
		case !killed && done >= total*4/10:
			victim.cmd.Process.Signal(syscall.SIGKILL)
			<-victim.exited
			killed = true
			at := time.Now()
			go func() {
				for owned(survivors...) != 12 && time.Since(at) < 30*time.Second {
					time.Sleep(50 * time.Millisecond)
				}
				moved <- time.Since(at)
			}()
		case !nodeDown && done >= total*7/10:
			c.Servers[2].Kill()
			nodeDown = true
		}
	})
	if err != nil {
		t.Fatalf("publishing: %v", err)
	}
	took := <-moved
	t.Logf("w1 killed; the survivors owned its partitions %s later (lease 3s)", took.Round(50*time.Millisecond))
	if took > 3*time.Second+5*time.Second {
		t.Errorf("failover took %s; want at most the lease (3s) + 5s", took)
	}
	lag := func(ws ...*clusterWorker) float64 {
		n := 0.0
		for _, w := range ws {
			for p := range 12 {
				n += w.metric(`vigil_partition_lag_messages{partition="` + strconv.Itoa(p) + `"}`)
			}
		}
		return n
	}
	// Every partition read up to its last message (its mark), by
	// whichever worker owns it now.
	caughtUp := func(ws ...*clusterWorker) []int {
		var behind []int
		for p := range 12 {
			mark := 0.0
			for _, w := range ws {
				mark = max(mark, w.metric(`vigil_partition_mark{partition="`+strconv.Itoa(p)+`"}`))
			}
			if uint64(mark) < last[p] {
				behind = append(behind, p)
			}
		}
		return behind
	}
	if !waitUntilTrue(30*time.Second, func() bool { return len(caughtUp(survivors...)) == 0 }) {
		t.Fatalf("partitions %v not read to their end; lag %v", caughtUp(survivors...), lag(survivors...))
	}
	// The node comes back before the clean stop, as an operator would
	// bring it back; the final checkpoints then have three nodes again.
	c.Servers[2].Restart()
	time.Sleep(time.Second)
	for _, w := range survivors {
		w.stop(t)
	}
	checkCovered(t, js, "vigil-cluster", last)

	// The reference: one worker alone over the same stream.
	ref := startClusterWorker(t, bin, c.Servers[0].URL(), "ref-", "ref", "")
	if !waitUntilTrue(30*time.Second, func() bool { return owned(ref) == 12 && len(caughtUp(ref)) == 0 }) {
		t.Fatalf("the reference worker owns %v partitions; %v not read to their end", owned(ref), caughtUp(ref))
	}
	time.Sleep(time.Second)
	ref.stop(t)
	checkCovered(t, js, "ref-cluster", last)

	want := map[string]bool{}
	for _, id := range ref.eventIDs(t) {
		want[id] = true
	}
	if len(want) < 20 {
		t.Fatalf("the reference raised %d alerts; the fixture has dozens of events", len(want))
	}
	got := map[string]int{}
	for _, w := range workers {
		for _, id := range w.eventIDs(t) {
			got[id]++
		}
	}
	var missing, extra []string
	for id := range want {
		if got[id] == 0 {
			missing = append(missing, id)
		}
	}
	for id := range got {
		if !want[id] {
			extra = append(extra, id)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	if len(missing) > 0 || len(extra) > 0 {
		t.Errorf("alert files: %d of %d reference events missing %v, %d not in the reference %v",
			len(missing), len(want), missing[:min(len(missing), 10)], len(extra), extra[:min(len(extra), 10)])
	}
	dups := 0
	for _, n := range got {
		dups += n - 1
	}
	t.Logf("reference: %d alert events; the 3 workers' files: %d distinct, %d written twice (replayed after the failover)", len(want), len(got), dups)

	ids := allEventIDs(t, alerts, len(want))
	seen := map[string]int{}
	for _, id := range ids {
		seen[id]++
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("event %s stored %d times in the JetStream output", id, n)
		}
	}
	if !maps.EqualFunc(seen, want, func(n int, _ bool) bool { return n >= 1 }) || len(seen) != len(want) {
		var lost []string
		for id := range want {
			if seen[id] == 0 {
				lost = append(lost, id)
			}
		}
		t.Errorf("JetStream output: %d events, the reference %d; lost %v", len(seen), len(want), lost[:min(len(lost), 10)])
	}
}

// checkCovered: every partition's record holds a checkpoint covering
// its last message: nothing published was left unjudged.
func checkCovered(t *testing.T, js natsjs.JetStream, bucket string, last map[int]uint64) {
	t.Helper()
	kv, err := js.KeyValue(t.Context(), bucket)
	if err != nil {
		t.Fatal(err)
	}
	recs := cluster.NewRecords(kv)
	for p := range 12 {
		rec, err := recs.Get(t.Context(), p)
		if err != nil {
			t.Errorf("partition %d: %v", p, err)
			continue
		}
		switch {
		case rec.Checkpoint == nil:
			t.Errorf("partition %d (%s): no checkpoint", p, bucket)
		case rec.Checkpoint.Mark != last[p]:
			t.Errorf("partition %d (%s): checkpoint covers up to sequence %d; the partition's last message is %d", p, bucket, rec.Checkpoint.Mark, last[p])
		case !rec.Released:
			t.Errorf("partition %d (%s): not released by a clean stop: %+v", p, bucket, rec)
		}
	}
}

func httpGetErr(url string) (string, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), nil
}

// waitUntilTrue polls cond every 100 ms until it holds or d passes.
func waitUntilTrue(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(100 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// allEventIDs reads the Nats-Msg-Id of every message of stream once it
// holds at least want (or 30 s passed), retrying what a cluster that just
// lost a node may refuse.
func allEventIDs(t *testing.T, stream natsjs.Stream, want int) []string {
	t.Helper()
	var ids []string
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var info *natsjs.StreamInfo
		if info, err = stream.Info(t.Context()); err != nil || info.State.Msgs < uint64(want) {
			continue
		}
		var cons natsjs.Consumer
		if cons, err = stream.OrderedConsumer(t.Context(), natsjs.OrderedConsumerConfig{}); err != nil {
			continue
		}
		var batch natsjs.MessageBatch
		if batch, err = cons.Fetch(int(info.State.Msgs), natsjs.FetchMaxWait(5*time.Second)); err != nil {
			continue
		}
		ids = ids[:0]
		for m := range batch.Messages() {
			ids = append(ids, m.Headers().Get(natsjs.MsgIDHeader))
		}
		if len(ids) == int(info.State.Msgs) {
			return ids
		}
	}
	t.Logf("reading the alert stream: %d messages read; last error %v", len(ids), err)
	return ids
}

// TestClusterFenceStaleWorker: a worker paused (SIGSTOP) past its lease
// loses its partitions to the other; when it resumes it finds its
// membership lost, stops its partitions without writing a checkpoint or a
// record (the new owner's records are untouched), rejoins as a new
// incarnation and gets its share back by hand-over.
func TestClusterFenceStaleWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	srv := natstest.Start(t)
	bin := buildVigil(t)
	js := natstest.JetStream(t, srv.URL())
	layout := "  partitions: 4\n  replicas: 1\n"
	w1 := startClusterWorkerWith(t, bin, srv.URL(), "vigil-", "w1", "", layout, "")
	w2 := startClusterWorkerWith(t, bin, srv.URL(), "vigil-", "w2", "", layout, "")
	owns := func(w *clusterWorker, n float64) func() bool {
		return func() bool { return w.metric("vigil_partitions_owned") == n }
	}
	if !waitUntilTrue(20*time.Second, func() bool { return owns(w1, 2)() && owns(w2, 2)() }) {
		t.Fatalf("w1 owns %v, w2 %v; want 2 each", w1.metric("vigil_partitions_owned"), w2.metric("vigil_partitions_owned"))
	}
	if _, err := publishPlant(t.Context(), js, 4, time.Second, func(int, int) {}); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(t.Context(), "vigil-cluster")
	if err != nil {
		t.Fatal(err)
	}
	recs := cluster.NewRecords(kv)

	w1.cmd.Process.Signal(syscall.SIGSTOP)
	paused := time.Now()
	if !waitUntilTrue(20*time.Second, owns(w2, 4)) {
		w1.cmd.Process.Signal(syscall.SIGCONT)
		t.Fatalf("w2 owns %v partitions with w1 paused; want 4", w2.metric("vigil_partitions_owned"))
	}
	t.Logf("w1 paused; w2 took its partitions after %s (lease 3s)", time.Since(paused).Round(50*time.Millisecond))
	before, err := recs.List(t.Context(), 4)
	if err != nil {
		t.Fatal(err)
	}
	for p, r := range before {
		if !strings.HasPrefix(r.Owner, "w2.") {
			t.Fatalf("partition %d owned by %q while w1 is paused", p, r.Owner)
		}
	}

	w1.cmd.Process.Signal(syscall.SIGCONT)
	if !waitUntilTrue(20*time.Second, func() bool { return strings.Contains(w1.logs.String(), "membership lost") }) {
		t.Fatalf("w1 resumed without noticing it lost its lease; log:\n%s", w1.logs.String())
	}
	// Back to 2 each: w1 rejoined as a new incarnation and w2 handed two
	// partitions over.
	// (A hand-over drains the partition, up to pipeline.drain_timeout, and
	// checkpoints it once its alerts are delivered.)
	if !waitUntilTrue(45*time.Second, func() bool { return owns(w1, 2)() && owns(w2, 2)() }) {
		t.Fatalf("after the resume w1 owns %v, w2 %v; want 2 each", w1.metric("vigil_partitions_owned"), w2.metric("vigil_partitions_owned"))
	}
	after, err := recs.List(t.Context(), 4)
	if err != nil {
		t.Fatal(err)
	}
	for p := range 4 {
		b, a := before[p], after[p]
		switch {
		case strings.HasPrefix(a.Owner, "w2."):
			if a.Owner != b.Owner || a.Epoch != b.Epoch {
				t.Errorf("partition %d: record %+v changed from %+v although w2 kept it", p, a, b)
			}
		case strings.HasPrefix(a.Owner, "w1."):
			if a.Owner == before[0].Owner || a.Epoch <= b.Epoch || !b.Released && a.Epoch != b.Epoch+1 {
				t.Errorf("partition %d: w1 owns it as %s epoch %d; want a new incarnation at epoch %d", p, a.Owner, a.Epoch, b.Epoch+1)
			}
		default:
			t.Errorf("partition %d: owner %q", p, a.Owner)
		}
	}
	// vigil cluster status sees the two workers and every partition owned.
	statusCfg := writeConfig(t, "status.yaml", "cluster:\n  url: \""+srv.URL()+"\"\n  partitions: 4\n")
	code, out, errs := runCLI(t, "cluster", "status", "--config", statusCfg, "--json")
	var st clusterStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != 0 {
		t.Fatalf("cluster status: exit %d, %v\n%s%s", code, err, out, errs)
	}
	if len(st.Members) != 2 || len(st.Partitions) != 4 || len(st.Unowned) != 0 {
		t.Errorf("cluster status: %d members, %d partitions, unowned %v; want 2, 4, none", len(st.Members), len(st.Partitions), st.Unowned)
	}
	for _, p := range st.Partitions {
		if !p.Live || p.Last == 0 || p.Mark > p.Last {
			t.Errorf("cluster status: partition %+v", p)
		}
	}
	if f := st.Fleet; f == nil || f.Judge != st.Partitions[0].Owner || f.Reports == 0 || f.LastReport == nil {
		t.Errorf("cluster status: fleet %+v; want the judge on partition 0's owner %s, and reports", f, st.Partitions[0].Owner)
	}
	if code, out, _ := runCLI(t, "cluster", "status", "--config", statusCfg); code != 0 || !strings.Contains(out, "2 live workers: w1, w2") ||
		!strings.Contains(out, "fleet judge: "+st.Partitions[0].Owner) {
		t.Errorf("cluster status (text): exit %d\n%s", code, out)
	}
	// Buckets nobody owns anything in: exit 1.
	noneCfg := writeConfig(t, "none.yaml", "cluster:\n  url: \""+srv.URL()+"\"\n  partitions: 4\n  cluster_bucket: vigil-members\n")
	if code, out, _ := runCLI(t, "cluster", "status", "--config", noneCfg); code != 1 || !strings.Contains(out, "never owned") {
		t.Errorf("cluster status with no owners: exit %d; want 1\n%s", code, out)
	}

	// Both of its partitions were stopped fenced (no final checkpoint,
	// no release), not handed over.
	if n := strings.Count(w1.logs.String(), `msg="partition fenced: stopped without writing more"`); n != 2 {
		t.Errorf("w1 stopped %d partitions fenced after its resume; want its 2; log:\n%s", n, w1.logs.String())
	}
}
