package sim_test

import (
	"fmt"
	"io"
	"os"

	"github.com/vigil-iot/vigil/pipeline/sim"
)

func ExampleGenerator() {
	g, err := sim.New(sim.DefaultConfig())
	if err != nil {
		panic(err)
	}
	for range 3 {
		m, _ := g.Next()
		fmt.Printf("%s %s\n", m.Topic, m.Payload)
	}
	// Output:
	// plant/line-b/sensor-node-10/telemetry {"timestamp":"2026-11-21T10:00:00.028Z","node_id":"sensor-node-10","data":{"p":4.95,"t":46.56,"v":1.77},"status":0}
	// plant/line-a/sensor-node-05/telemetry {"timestamp":"2026-11-21T10:00:00.126Z","node_id":"sensor-node-05","data":{"p":3.51,"t":54.97,"v":2.61},"status":0}
	// plant/line-b/sensor-node-11/telemetry {"timestamp":"2026-11-21T10:00:00.190Z","node_id":"sensor-node-11","data":{"p":5.03,"t":72.51,"v":2.4},"status":0}
}

func ExampleWriteLog() {
	labels, err := sim.WriteLog(io.Discard, sim.DefaultConfig())
	if err != nil {
		panic(err)
	}
	if err := sim.WriteLabels(os.Stdout, labels[:3]); err != nil {
		panic(err)
	}
	// Output:
	// [
	// {"device":"sensor-node-01","kind":"overpressure","detail":"spike","start":"2026-11-21T10:10:08.576Z","end":"2026-11-21T10:10:17.584Z"},
	// {"device":"sensor-node-07","kind":"overpressure","detail":"spike","start":"2026-11-21T10:10:15.789Z","end":"2026-11-21T10:10:20.816Z"},
	// {"device":"sensor-node-04","kind":"overpressure","detail":"spike","start":"2026-11-21T10:10:40.361Z","end":"2026-11-21T10:10:49.355Z"}
	// ]
}
