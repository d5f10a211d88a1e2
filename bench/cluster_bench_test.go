package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	natsclient "github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-iot/vigil/internal/natstest"
	"github.com/vigil-iot/vigil/pipeline/jetstream"
)

// BenchmarkClusterWorkers measures the scale-out's cost: a simulated fleet
// (1,000 devices, 15 minutes, 900,000 messages) is published into a
// 12-partition stream on one nats-server, then 1, 2 or 3 "vigil run
// --source jetstream" processes judge it from the start. It reports the
// messages judged per worker CPU-second (user + system of the worker
// processes, start to clean stop, checkpoints included) and its ratio to
// "vigil replay" of the same log file (the single Vigil's figure, per CPU
// second of the replay process), and the wall time until every partition
// was read. Run with -benchtime 1x; it needs nats-server >= 2.11.
func BenchmarkClusterWorkers(b *testing.B) {
	natstest.Require(b)
	dir := b.TempDir()
	bin := filepath.Join(dir, "vigil")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/vigil").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	cfg := fleetConfig()
	cfg.Duration = 15 * time.Minute
	wl, err := writeLog(filepath.Join(dir, "fleet.log"), cfg)
	if err != nil {
		b.Fatal(err)
	}
	// The reference is measured next to every worker run, so both see the
	// same machine: on 2 shared vCPUs a replay's CPU time varies by a
	// third from minute to minute.
	replayRate := func() float64 {
		replay := exec.Command(bin, "replay", "--alerts", os.DevNull, wl.path)
		if out, err := replay.CombinedOutput(); err != nil {
			b.Fatalf("replay: %v\n%s", err, out)
		}
		cpu := replay.ProcessState.UserTime() + replay.ProcessState.SystemTime()
		b.Logf("vigil replay: %d messages, %.2f CPU-s: %.0f msgs per CPU-second", wl.lines, cpu.Seconds(), float64(wl.lines)/cpu.Seconds())
		return float64(wl.lines) / cpu.Seconds()
	}

	// pack=64 is what the bridge stores when a partition's readings
	// arrive together (BridgeConfig.Pack's default); pack=1 one stream
	// message per reading, as at low rates or from devices publishing to
	// NATS directly.
	for _, c := range []struct{ workers, pack int }{{1, 1}, {1, 64}, {2, 64}, {3, 64}} {
		b.Run(fmt.Sprintf("workers=%d/pack=%d", c.workers, c.pack), func(b *testing.B) {
			for range b.N {
				single := replayRate()
				perCPU, wall := clusterRun(b, bin, wl, c.workers, c.pack)
				b.ReportMetric(perCPU, "msgs/cpu-s")
				b.ReportMetric(perCPU/single, "vs-replay")
				b.ReportMetric(single, "replay-msgs/cpu-s")
				b.ReportMetric(wall.Seconds(), "wall-s")
			}
		})
	}
}

// clusterRun publishes wl into a fresh stream, lets n workers judge it and
// returns the messages per worker CPU-second and the wall time until every
// partition was read to its end.
func clusterRun(b *testing.B, bin string, wl workload, n, pack int) (float64, time.Duration) {
	srv := natstest.Start(b)
	js := natstest.JetStream(b, srv.URL(), natsjs.WithPublishAsyncMaxPending(4096))
	ctx := context.Background()
	const partitions = 12
	if err := jetstream.Setup(ctx, js, jetstream.Config{Partitions: partitions}); err != nil {
		b.Fatal(err)
	}
	last, err := publishLog(ctx, js, wl.path, partitions, pack)
	if err != nil {
		b.Fatal(err)
	}
	var workers []*exec.Cmd
	var addrs []string
	start := time.Now()
	for i := range n {
		addr := freeAddr(b)
		d := b.TempDir()
		cfgPath := filepath.Join(d, "worker.yaml")
		os.WriteFile(cfgPath, []byte(fmt.Sprintf("cluster:\n  url: %q\n  partitions: %d\n  worker_id: w%d\n"+
			"alerts:\n  journal: {dir: %s}\n  mqtt: {enabled: false}\n  file: %s\n"+
			"metrics:\n  listen: %s\n", srv.URL(), partitions, i, filepath.Join(d, "journal"), filepath.Join(d, "alerts.jsonl"), addr)), 0o600)
		cmd := exec.Command(bin, "run", "--source", "jetstream", "--config", cfgPath)
		cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		workers, addrs = append(workers, cmd), append(addrs, addr)
		defer cmd.Process.Kill()
	}
	for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if caughtUp(addrs, last) {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the workers did not read every partition within 10 minutes")
		}
	}
	wall := time.Since(start)
	var cpu time.Duration
	for _, w := range workers {
		w.Process.Signal(syscall.SIGTERM)
		w.Wait()
		cpu += w.ProcessState.UserTime() + w.ProcessState.SystemTime()
	}
	b.Logf("%d workers: %d messages in %s wall, %.2f worker CPU-s", n, wl.lines, wall.Round(10*time.Millisecond), cpu.Seconds())
	return float64(wl.lines) / cpu.Seconds(), wall
}

// publishLog publishes every line of path on its device's partition, up
// to pack lines of a partition in one packed message (as the bridge does
// when they arrive together), and returns the last stream sequence of
// each partition.
func publishLog(ctx context.Context, js natsjs.JetStream, path string, partitions, pack int) (map[int]uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	last := map[int]uint64{}
	type pending struct {
		fut natsjs.PubAckFuture
		p   int
	}
	var futs []pending
	flush := func() error {
		for _, x := range futs {
			select {
			case ack := <-x.fut.Ok():
				last[x.p] = max(last[x.p], ack.Sequence)
			case err := <-x.fut.Err():
				return err
			}
		}
		futs = futs[:0]
		return nil
	}
	packs, counts := make([][]byte, partitions), make([]int, partitions)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m struct {
			Node string `json:"node_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, err
		}
		p := jetstream.PartitionOf(m.Node, partitions)
		msg := &natsclient.Msg{Subject: jetstream.Subject(m.Node, partitions), Data: append([]byte(nil), sc.Bytes()...)}
		if pack > 1 {
			if packs[p] == nil {
				packs[p] = jetstream.AppendPackHeader(nil)
			}
			packs[p] = jetstream.AppendPack(packs[p], "", 0, sc.Bytes())
			if counts[p]++; counts[p] < pack {
				continue
			}
			msg = &natsclient.Msg{Subject: jetstream.PartitionSubject(p, jetstream.PackToken), Data: packs[p]}
			packs[p], counts[p] = nil, 0
		}
		fut, err := js.PublishMsgAsync(msg)
		if err != nil {
			return nil, err
		}
		futs = append(futs, pending{fut, p})
		if len(futs) == 2048 {
			if err := flush(); err != nil {
				return nil, err
			}
		}
	}
	for p, body := range packs {
		if body == nil {
			continue
		}
		fut, err := js.PublishMsgAsync(&natsclient.Msg{Subject: jetstream.PartitionSubject(p, jetstream.PackToken), Data: body})
		if err != nil {
			return nil, err
		}
		futs = append(futs, pending{fut, p})
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return last, sc.Err()
}

// caughtUp reports whether the workers at addrs have read every partition
// to its last message (vigil_partition_mark).
func caughtUp(addrs []string, last map[int]uint64) bool {
	marks := map[int]uint64{}
	client := &http.Client{Timeout: 2 * time.Second}
	for _, a := range addrs {
		resp, err := client.Get("http://" + a + "/metrics")
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, l := range strings.Split(string(body), "\n") {
			rest, ok := strings.CutPrefix(l, `vigil_partition_mark{partition="`)
			if !ok {
				continue
			}
			ps, v, _ := strings.Cut(rest, `"} `)
			p, _ := strconv.Atoi(ps)
			m, _ := strconv.ParseFloat(v, 64)
			marks[p] = max(marks[p], uint64(m))
		}
	}
	for p, l := range last {
		if marks[p] < l {
			return false
		}
	}
	return true
}

func freeAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
