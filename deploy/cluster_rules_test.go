package deploy

import (
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/internal/natstest"
	"github.com/vigil-iot/vigil/pipeline/mqtt/mqtttest"
)

const (
	clusterRulesFile     = "prometheus/vigil-cluster-rules.yml"
	clusterRulesTestFile = "prometheus/vigil-cluster-rules.test.yml"
)

// clusterRuleExprs returns the expressions of vigil-cluster-rules.yml.
func clusterRuleExprs(t *testing.T) []string {
	t.Helper()
	var exprs []string
	for _, g := range loadRules(t, clusterRulesFile).Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	return exprs
}

// TestClusterRulesMetrics runs the scale-out as the cluster rules expect
// to scrape it: a nats-server, one worker (vigil run --source jetstream,
// 4 partitions) and vigil bridge reading a Mosquitto broker. Once the
// worker owns every partition and reads the bridge's ticks, every metric
// vigil-cluster-rules.yml names must be in the worker's or the bridge's
// /metrics, and the jobs its up rules name must be vigil-worker and
// vigil-bridge (the scrape jobs docs/DEPLOY.md tells Prometheus to use).
func TestClusterRulesMetrics(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nats-server, Mosquitto, a worker and the bridge")
	}
	// The rules first: a mistake there needs no servers to show.
	exprs := clusterRuleExprs(t)
	names := namesIn(exporterName, exprs)
	if len(names) == 0 {
		t.Fatalf("no metric names found in %s", clusterRulesFile)
	}
	jobs := namesIn(regexp.MustCompile(`\bjob="[^"]*"`), exprs)
	if want := []string{`job="vigil-bridge"`, `job="vigil-worker"`}; !slices.Equal(jobs, want) {
		t.Errorf("%s selects jobs %q; want %q", clusterRulesFile, jobs, want)
	}

	nats := natstest.Start(t)
	broker := mqtttest.Start(t, mqtttest.Options{})
	bin := buildVigil(t)
	work := t.TempDir()

	workerAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	workerCfg := filepath.Join(work, "worker.yaml")
	writeFile(t, workerCfg, "cluster:\n  url: \""+nats.URL()+"\"\n  partitions: 4\n  replicas: 1\n"+
		"  checkpoint_interval: 1s\n  worker_id: w1\n"+
		"alerts:\n  journal: {dir: "+filepath.Join(work, "journal")+"}\n  mqtt: {enabled: false}\n"+
		"  file: "+filepath.Join(work, "alerts.jsonl")+"\n"+
		"metrics:\n  listen: "+workerAddr+"\n", 0o600)

	// The bridge's mqtt section as a plant's: TLS with the broker's CA,
	// Vigil's user and password file, the plant's topics.
	bridgeAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	bridgeCfg := filepath.Join(work, "bridge.yaml")
	writeFile(t, bridgeCfg, "mqtt:\n  broker: "+broker.URL()+"\n  client_id: vigil-bridge\n  username: vigil\n"+
		"  password_file: "+broker.PasswordFile("vigil")+"\n  tls: {ca_file: "+broker.CAFile+"}\n"+
		"  subscriptions: [\"plant/#\"]\n"+
		"cluster:\n  url: \""+nats.URL()+"\"\n  partitions: 4\n  replicas: 1\n"+
		"bridge:\n  tick: 200ms\n"+
		"metrics:\n  listen: "+bridgeAddr+"\n", 0o600)

	for _, cfg := range []string{workerCfg, bridgeCfg} {
		if code, out, errs := runTool(t, bin, "config", "check", cfg); code != 0 {
			t.Fatalf("vigil config check %s: exit %d\n%s%s", filepath.Base(cfg), code, out, errs)
		}
	}

	worker := startProcess(t, bin, "run", "--source", "jetstream", "--config", workerCfg)
	bridge := startProcess(t, bin, "bridge", "--config", bridgeCfg)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker's log:\n%s\nbridge's log:\n%s", worker.out.String(), bridge.out.String())
		}
	})
	for _, p := range []struct {
		name, addr string
		proc       *process
	}{{"worker", workerAddr, worker}, {"bridge", bridgeAddr, bridge}} {
		if !waitFor(45*time.Second, func() bool {
			code, _, _ := httpDo("GET", "http://"+p.addr+"/readyz")
			return code == http.StatusOK
		}) {
			t.Fatalf("the %s never became ready", p.name)
		}
	}

	// Every partition owned by the worker and read: the bridge ticks
	// each one every 200ms, so each partition's mark moves past 0.
	var workerBody string
	owned := regexp.MustCompile(`(?m)^vigil_partition_owned\{partition="[0-3]"\} 1$`)
	read := regexp.MustCompile(`(?m)^vigil_partition_mark\{partition="[0-3]"\} [1-9]`)
	if !waitFor(30*time.Second, func() bool {
		_, workerBody, _ = httpDo("GET", "http://"+workerAddr+"/metrics")
		return len(owned.FindAllString(workerBody, -1)) == 4 && len(read.FindAllString(workerBody, -1)) == 4
	}) {
		t.Fatalf("the worker does not own and read all 4 partitions:\n%s", grep(workerBody, "vigil_partition"))
	}
	_, bridgeBody, err := httpDo("GET", "http://"+bridgeAddr+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	fromWorker, fromBridge := scrapedNames(workerBody), scrapedNames(bridgeBody)
	for _, n := range names {
		switch {
		case fromWorker[n] && fromBridge[n]:
			t.Logf("%s: worker and bridge", n)
		case fromWorker[n]:
			t.Logf("%s: worker", n)
		case fromBridge[n]:
			t.Logf("%s: bridge", n)
		default:
			t.Errorf("%s uses %s, which neither the worker nor the bridge exports", clusterRulesFile, n)
		}
	}

	if err := bridge.stop(t, 30*time.Second); err != nil {
		t.Errorf("vigil bridge after SIGTERM: %v; want exit 0", err)
	}
	if err := worker.stop(t, 60*time.Second); err != nil {
		t.Errorf("the worker after SIGTERM: %v; want exit 0", err)
	}
}
