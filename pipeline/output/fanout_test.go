package output

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/journal"
)

// fakeOut is an Output whose failures a test controls.
type fakeOut struct {
	mu       sync.Mutex
	got      []string
	connects int
	closed   bool
	// fail, when set, decides the outcome of a Write.
	fail func(batch []pipeline.Alert) error
	// hold, when set, blocks Write until closed or ctx ends.
	hold chan struct{}
}

func (o *fakeOut) Connect(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.connects++
	return nil
}

func (o *fakeOut) Write(ctx context.Context, batch []pipeline.Alert) error {
	o.mu.Lock()
	hold, fail := o.hold, o.fail
	o.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail != nil {
		if err := fail(batch); err != nil {
			var be *BatchError
			if errors.As(err, &be) {
				o.mu.Lock()
				bad := map[int]bool{}
				for _, it := range be.Failed {
					bad[it.Index] = true
				}
				for i := range batch {
					if !bad[i] {
						o.got = append(o.got, batch[i].ID)
					}
				}
				o.mu.Unlock()
			}
			return err
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := range batch {
		o.got = append(o.got, batch[i].ID)
	}
	return nil
}

func (o *fakeOut) Close(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	return nil
}

func (o *fakeOut) ids() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.got...)
}

func (o *fakeOut) set(fail func([]pipeline.Alert) error) {
	o.mu.Lock()
	o.fail = fail
	o.mu.Unlock()
}

func batchOf(from, n int) []pipeline.Alert {
	as := make([]pipeline.Alert, n)
	for i := range as {
		as[i] = pipeline.Alert{ID: fmt.Sprintf("a%05d", from+i), Device: "d", Kind: "thermal", State: pipeline.Firing, Severity: pipeline.Warning}
	}
	return as
}

func idsOf(as []pipeline.Alert) []string {
	s := make([]string, len(as))
	for i := range as {
		s[i] = as[i].ID
	}
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newFanout(t *testing.T, dir string, dl DeadLetters, specs ...Spec) *Fanout {
	t.Helper()
	for i := range specs {
		specs[i].Retry = Retry{Initial: time.Millisecond, Max: 5 * time.Millisecond, MaxAttempts: specs[i].Retry.MaxAttempts}
	}
	f, err := New(Config{Journal: journal.Config{Dir: dir}, Outputs: specs, DeadLetters: dl, DrainTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	f.Start(context.Background())
	return f
}

// TestDeadOutputBlocksNothing: one output is down, another blocks in
// Write; the pipeline's writes return at once, the healthy output gets
// everything, and when the others come back they get everything too, in
// order.
func TestDeadOutputBlocksNothing(t *testing.T) {
	down := errors.New("connection refused")
	good, dead, stuck := &fakeOut{}, &fakeOut{}, &fakeOut{hold: make(chan struct{})}
	dead.set(func([]pipeline.Alert) error { return down })
	f := newFanout(t, t.TempDir(), nil, Spec{Name: "good", Output: good}, Spec{Name: "dead", Output: dead}, Spec{Name: "stuck", Output: stuck})
	defer f.Close()

	start := time.Now()
	var want []string
	for i := range 200 {
		b := batchOf(i*5, 5)
		want = append(want, idsOf(b)...)
		if err := f.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("1000 alerts took %v to hand over with two outputs down", d)
	}
	waitFor(t, "the healthy output", func() bool { return len(good.ids()) == len(want) })
	if !reflect.DeepEqual(good.ids(), want) {
		t.Fatal("healthy output: alerts missing or out of order")
	}
	st := f.Statuses()
	if st[1].LastError == "" || st[1].Lag != uint64(len(want)) || st[0].Lag != 0 {
		t.Errorf("got statuses %+v; want the dead output failing with the whole lag, the good one caught up", st)
	}
	dead.set(nil)
	close(stuck.hold)
	waitFor(t, "the recovered outputs", func() bool { return len(dead.ids()) == len(want) && len(stuck.ids()) == len(want) })
	if !reflect.DeepEqual(dead.ids(), want) || !reflect.DeepEqual(stuck.ids(), want) {
		t.Error("recovered outputs: alerts missing, duplicated or out of order")
	}
	if dead.connects < 2 {
		t.Errorf("dead output connected %d times; want a reconnect after each failure", dead.connects)
	}
}

// TestRestartDeliversTheBacklog: alerts an output had not taken when Vigil
// stopped are delivered after the next start.
func TestRestartDeliversTheBacklog(t *testing.T) {
	dir := t.TempDir()
	out := &fakeOut{}
	out.set(func([]pipeline.Alert) error { return errors.New("503") })
	f := newFanout(t, dir, nil, Spec{Name: "siem", Output: out})
	want := idsOf(batchOf(0, 50))
	f.Write(context.Background(), batchOf(0, 50))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if len(out.ids()) != 0 || !out.closed {
		t.Fatalf("got %d delivered, closed %v; want none delivered and the output closed", len(out.ids()), out.closed)
	}
	out2 := &fakeOut{}
	f = newFanout(t, dir, nil, Spec{Name: "siem", Output: out2})
	defer f.Close()
	waitFor(t, "the backlog", func() bool { return len(out2.ids()) == 50 })
	if !reflect.DeepEqual(out2.ids(), want) {
		t.Errorf("got %v; want the 50 alerts of the previous run", out2.ids())
	}
}

type memDead struct {
	mu  sync.Mutex
	ids []string
	why []string
}

func (m *memDead) Put(output string, a *pipeline.Alert, reason error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ids = append(m.ids, output+"/"+a.ID)
	m.why = append(m.why, reason.Error())
	return nil
}

func (m *memDead) list() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.ids...)
}

func TestPermanentAndPartialFailures(t *testing.T) {
	dl := &memDead{}
	out := &fakeOut{}
	var mu sync.Mutex
	calls := 0
	out.set(func(b []pipeline.Alert) error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		switch {
		case b[0].ID == "a00000": // the first batch: a00001 refused for good, a00002 to retry
			return &BatchError{Failed: []ItemError{{Index: 1, Err: Permanent(errors.New("mapper_parsing_exception"))}, {Index: 2, Err: errors.New("429")}}}
		case b[0].ID == "a00010":
			return Permanent(errors.New("HTTP 400: bad request"))
		}
		return nil
	})
	f := newFanout(t, t.TempDir(), dl, Spec{Name: "es", Output: out, Batch: Batching{Count: 10}})
	defer f.Close()
	f.Write(context.Background(), batchOf(0, 10))
	waitFor(t, "the first batch", func() bool { return len(out.ids()) == 9 })
	f.Write(context.Background(), batchOf(10, 10))
	f.Write(context.Background(), batchOf(20, 5))
	waitFor(t, "the rest", func() bool { return len(out.ids()) == 14 })
	got := out.ids()
	want := append(append([]string{"a00000"}, idsOf(batchOf(3, 7))...), "a00002")
	want = append(want, idsOf(batchOf(20, 5))...)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("delivered %v; want %v", got, want)
	}
	wantDead := []string{"es/a00001"}
	for _, id := range idsOf(batchOf(10, 10)) {
		wantDead = append(wantDead, "es/"+id)
	}
	if !reflect.DeepEqual(dl.list(), wantDead) {
		t.Errorf("dead letters %v; want %v", dl.list(), wantDead)
	}
}

func TestMaxAttemptsAndDeadLetterFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dead.jsonl")
	dl, err := OpenDeadLetterFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Close()
	out := &fakeOut{}
	out.set(func([]pipeline.Alert) error { return errors.New("timeout") })
	f := newFanout(t, t.TempDir(), dl, Spec{Name: "hook", Output: out, Retry: Retry{MaxAttempts: 3}})
	f.Write(context.Background(), batchOf(0, 2))
	waitFor(t, "the dead letters", func() bool { b, _ := os.ReadFile(path); return len(b) > 0 && countLines(path) == 2 })
	f.Close()
	fh, _ := os.Open(path)
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for i := 0; sc.Scan(); i++ {
		var line struct {
			Output, Reason string
			Alert          pipeline.Alert
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("dead letter line %q: %v", sc.Text(), err)
		}
		if line.Output != "hook" || line.Reason != "gave up after 3 attempts: timeout" || line.Alert.ID != fmt.Sprintf("a%05d", i) {
			t.Errorf("got %+v; want output hook, the reason and alert a%05d", line, i)
		}
	}
}

func countLines(path string) int {
	b, _ := os.ReadFile(path)
	n := 0
	for _, c := range b {
		if c == '\n' {
			n++
		}
	}
	return n
}

func TestBackoff(t *testing.T) {
	r := &runner{spec: Spec{Retry: Retry{Initial: 100 * time.Millisecond, Max: time.Second}}}
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 40: time.Second} {
		for range 50 {
			if d := r.backoff(n, errors.New("x")); d < want/2 || d > want {
				t.Fatalf("retry %d: got %v; want within [%v, %v]", n, d, want/2, want)
			}
		}
	}
	if d := r.backoff(1, RetryAfter(errors.New("429"), 7*time.Second)); d != 7*time.Second {
		t.Errorf("with Retry-After 7s: got %v; want 7s", d)
	}
}

func TestDuplicateNames(t *testing.T) {
	_, err := New(Config{Journal: journal.Config{Dir: t.TempDir()}, Outputs: []Spec{{Name: "a", Output: &fakeOut{}}, {Name: "a", Output: &fakeOut{}}}})
	if err == nil {
		t.Error("two outputs named a: got no error")
	}
}

// TestWaitDelivered: WaitDelivered waits for the slowest output, not the
// journal: a held output keeps it waiting until released.
func TestWaitDelivered(t *testing.T) {
	fast, slow := &fakeOut{}, &fakeOut{hold: make(chan struct{})}
	f := newFanout(t, t.TempDir(), nil, Spec{Name: "fast", Output: fast}, Spec{Name: "slow", Output: slow})
	ctx := t.Context()
	defer f.Close()
	if err := f.Write(ctx, batchOf(0, 5)); err != nil {
		t.Fatal(err)
	}
	upTo := f.Appended()
	if upTo != 5 {
		t.Fatalf("Appended %d after 5 alerts", upTo)
	}
	waitFor(t, "the fast output", func() bool { return len(fast.ids()) == 5 })
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := f.WaitDelivered(short, upTo); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitDelivered with one output held: %v; want it to wait", err)
	}
	close(slow.hold)
	if err := f.WaitDelivered(ctx, upTo); err != nil {
		t.Fatal(err)
	}
	if len(slow.ids()) != 5 {
		t.Errorf("slow output has %d alerts after WaitDelivered; want 5", len(slow.ids()))
	}
}
