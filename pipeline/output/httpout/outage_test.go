package httpout

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline/journal"
	"github.com/vigil-iot/vigil/pipeline/output"
)

// TestHECOutageThroughJournal: Splunk answers 503 for a while and its
// indexer acknowledgements come late; through the journal and the runner
// every alert is indexed, once, in order.
func TestHECOutageThroughJournal(t *testing.T) {
	f := &fakeHEC{ack: true, ackAfter: 2}
	for range 6 {
		f.script = append(f.script, response{status: 503, body: `{"text":"Server is busy","code":9}`})
	}
	h := newHEC(t, f, nil)
	fo, err := output.New(output.Config{
		Journal: journal.Config{Dir: filepath.Join(t.TempDir(), "journal")},
		Outputs: []output.Spec{{Name: "splunk", Output: h, Batch: output.Batching{Count: 7},
			Retry: output.Retry{Initial: 5 * time.Millisecond, Max: 20 * time.Millisecond}}},
		DrainTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	fo.Start(context.Background())
	alerts := testAlerts(40)
	for i := 0; i < len(alerts); i += 10 {
		if err := fo.Write(context.Background(), alerts[i:i+10]); err != nil {
			t.Fatal(err)
		}
	}
	if err := fo.Close(); err != nil {
		t.Fatal(err)
	}
	if st := fo.Statuses()[0]; st.Lag != 0 {
		t.Fatalf("%d alerts left undelivered", st.Lag)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var got []string
	for _, ev := range f.events {
		got = append(got, ev["fields"].(map[string]any)["event_id"].(string))
	}
	if len(got) != len(alerts) {
		t.Fatalf("Splunk indexed %d events; want %d", len(got), len(alerts))
	}
	for i := range alerts {
		if got[i] != alerts[i].EventID() {
			t.Fatalf("event %d: got %s; want %s (each alert once, in order)", i, got[i], alerts[i].EventID())
		}
	}
}
