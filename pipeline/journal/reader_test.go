package journal

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-iot/vigil/pipeline"
)

// metricValue is the value of the metric named exactly name in ms, or -1.
func metricValue(ms *metrics.Set, name string) int {
	for _, l := range strings.Split(metricsText(ms), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			var n int
			fmt.Sscanf(v, "%d", &n)
			return n
		}
	}
	return -1
}

// TestSegmentDroppedBeforeOpen: under drop_oldest, the segment a reader has
// chosen is removed before it opens the file (the reader does not hold the
// lock while it opens). The reader goes on from the oldest segment kept
// without an error, and the alerts it lost are counted once, as dropped,
// not again as corrupt.
func TestSegmentDroppedBeforeOpen(t *testing.T) {
	ms := metrics.NewSet()
	cfg := Config{Dir: t.TempDir(), SegmentSize: 64 << 10, MaxSize: 128 << 10, WhenFull: DropOldest, SyncEvery: time.Second, Metrics: ms}
	j := open(t, cfg, "slow")
	r, err := j.Reader("slow")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	appended := 0
	appendBatch := func() {
		if err := j.Append(context.Background(), alerts(appended, 50)); err != nil {
			t.Fatal(err)
		}
		appended += 50
	}
	appendBatch()
	r.beforeOpen = func() {
		r.beforeOpen = nil
		for {
			if oldest, _ := j.Position(); oldest > 0 {
				return
			}
			appendBatch()
		}
	}
	var got []pipeline.Alert
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		es, err := r.Next(ctx, nil, 100, 0, 0)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v; want the reader to go on from the oldest segment kept", err)
		}
		for _, e := range es {
			got = append(got, e.Alert)
		}
		if err := r.Commit(es[len(es)-1].Offset + 1); err != nil {
			t.Fatal(err)
		}
	}
	oldest, _ := j.Position()
	dropped := metricValue(ms, `vigil_journal_dropped_alerts_total{output="slow"}`)
	if dropped != int(oldest) {
		t.Errorf("dropped: got %d; want %d (the alerts before the oldest segment kept)", dropped, oldest)
	}
	if c := metricValue(ms, `vigil_journal_corrupt_records_total`); c != 0 {
		t.Errorf("corrupt records: got %d; want 0 (the drop is counted once, as dropped)", c)
	}
	if want := ids(alerts(int(oldest), appended-int(oldest))); !reflect.DeepEqual(ids(got), want) {
		t.Errorf("got %d alerts; want the %d from offset %d on, in order", len(got), len(want), oldest)
	}
}
