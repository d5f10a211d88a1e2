package output

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-iot/vigil/pipeline/journal"
)

// failingReader fails its first Next, then returns two alerts once the
// test lets it, then waits for the end.
type failingReader struct {
	mu        sync.Mutex
	calls     int
	second    chan struct{} // closed when the second Next starts
	proceed   chan struct{} // the second Next returns when closed
	committed uint64
}

func (f *failingReader) Next(ctx context.Context, dst []journal.Entry, _, _ int, _ time.Duration) ([]journal.Entry, error) {
	f.mu.Lock()
	f.calls++
	n := f.calls
	f.mu.Unlock()
	switch n {
	case 1:
		return dst, errors.New("journal: open segment: input/output error")
	case 2:
		close(f.second)
		select {
		case <-f.proceed:
		case <-ctx.Done():
			return dst, ctx.Err()
		}
		for i, a := range batchOf(0, 2) {
			dst = append(dst, journal.Entry{Offset: uint64(i), Alert: a})
		}
		return dst, nil
	}
	<-ctx.Done()
	return dst, ctx.Err()
}

func (f *failingReader) Commit(next uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.committed = next
	return nil
}

func (f *failingReader) Lag() uint64  { return 2 }
func (f *failingReader) Close() error { return nil }

// TestReadErrorIsRetried: an error reading the journal (other than its
// closing) does not end the output's runner: it shows in the status and
// the failure metric, is retried with backoff, and the alerts are
// delivered once the journal can be read again.
func TestReadErrorIsRetried(t *testing.T) {
	ms := metrics.NewSet()
	out := &fakeOut{}
	rd := &failingReader{second: make(chan struct{}), proceed: make(chan struct{})}
	r := newRunner(Spec{Name: "siem", Output: out, Retry: Retry{Initial: time.Millisecond, Max: 5 * time.Millisecond}},
		rd, nil, slog.New(slog.DiscardHandler), ms)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.run(ctx) })
	defer func() {
		cancel()
		wg.Wait()
	}()
	select {
	case <-rd.second:
	case <-time.After(10 * time.Second):
		t.Fatal("the runner never read the journal again after a read error: the output stopped delivering")
	}
	st := r.status()
	if !strings.Contains(st.LastError, "read the journal") || !strings.Contains(st.LastError, "input/output error") {
		t.Errorf("status while the journal cannot be read: LastError %q; want the read error", st.LastError)
	}
	var b bytes.Buffer
	ms.WritePrometheus(&b)
	if !strings.Contains(b.String(), `vigil_output_failures_total{output="siem"} 1`) {
		t.Errorf("failure metric after one read error:\n%s", b.String())
	}
	close(rd.proceed)
	waitFor(t, "the alerts read after the error", func() bool { return len(out.ids()) == 2 })
	if st := r.status(); st.LastError != "" {
		t.Errorf("status after recovery: LastError %q; want none", st.LastError)
	}
}
