package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/vigil-iot/vigil/internal/syncbuf"
	"github.com/vigil-iot/vigil/pipeline"
)

func alert(i int) pipeline.Alert {
	return pipeline.Alert{
		ID: fmt.Sprintf("id-%06d", i), Seq: uint64(i), Time: int64(i) * 1e9, Started: int64(i)*1e9 - 5e8,
		Device: fmt.Sprintf("dev-%d", i%7), Topic: "plant/a", Kind: "overpressure", Detector: "overpressure.spike",
		Severity: pipeline.Critical, State: pipeline.Firing, Signal: "pressure",
		Value: 6.3 + float64(i), Threshold: 4.6, Unit: "bar", Observed: 6.3, Mean: 4.2, Std: 0.06, Score: 5.6,
		Message: strings.Repeat("m", i%50), Escalation: i%3 == 0,
	}
}

func alerts(from, n int) []pipeline.Alert {
	as := make([]pipeline.Alert, n)
	for i := range as {
		as[i] = alert(from + i)
	}
	return as
}

func open(t *testing.T, cfg Config, outputs ...string) *Journal {
	t.Helper()
	j, err := Open(cfg, outputs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// drain reads everything available for r and commits it.
func drain(t *testing.T, r *Reader) []pipeline.Alert {
	t.Helper()
	var out []pipeline.Alert
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		es, err := r.Next(ctx, nil, 100, 0, 0)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			out = append(out, e.Alert)
		}
		if err := r.Commit(es[len(es)-1].Offset + 1); err != nil {
			t.Fatal(err)
		}
	}
}

func ids(as []pipeline.Alert) []string {
	s := make([]string, len(as))
	for i := range as {
		s[i] = as[i].ID
	}
	return s
}

func TestCodecRoundTrip(t *testing.T) {
	for _, a := range []pipeline.Alert{
		alert(1), alert(3), {},
		{ID: "x", Device: "\xff\xfe bad utf-8", Value: math.NaN(), Threshold: math.Inf(1), Mean: math.Inf(-1), Time: -5, State: pipeline.Resolved},
	} {
		b := AppendAlert(nil, &a)
		var got pipeline.Alert
		if err := DecodeAlert(b, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(AppendAlert(nil, &got), b) {
			t.Errorf("got %+v; want %+v", got, a)
		}
		if got.Device != a.Device || got.Escalation != a.Escalation || math.IsNaN(a.Value) != math.IsNaN(got.Value) {
			t.Errorf("got %+v; want %+v", got, a)
		}
		for n := range len(b) {
			if err := DecodeAlert(b[:n], &got); err == nil {
				t.Fatalf("truncated to %d of %d bytes: got no error", n, len(b))
			}
		}
	}
	if err := DecodeAlert([]byte{9, 0}, new(pipeline.Alert)); err == nil || !strings.Contains(err.Error(), "version 9") {
		t.Errorf("got %v; want an unsupported version error", err)
	}
}

func TestAppendReadRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentSize: 64 << 10, MaxSize: 1 << 20}
	j := open(t, cfg, "a", "b")
	for i := range 20 {
		if err := j.Append(context.Background(), alerts(i*50, 50)); err != nil {
			t.Fatal(err)
		}
	}
	bases, _ := listSegments(dir)
	if len(bases) < 3 {
		t.Fatalf("got %d segments; want the 1000 alerts spread over several 64 KiB segments", len(bases))
	}
	ra, _ := j.Reader("a")
	got := drain(t, ra)
	if want := ids(alerts(0, 1000)); !reflect.DeepEqual(ids(got), want) {
		t.Fatalf("output a read %d alerts; want 1000 in order", len(got))
	}
	if !reflect.DeepEqual(got[17], alert(17)) {
		t.Errorf("got %+v; want %+v", got[17], alert(17))
	}
	// b reads half and stops; the segments it still needs stay.
	rb, _ := j.Reader("b")
	es, err := rb.Next(context.Background(), nil, 500, 0, 0)
	if err != nil || len(es) != 500 {
		t.Fatalf("got %d, %v; want 500 alerts", len(es), err)
	}
	if err := rb.Commit(es[len(es)-1].Offset + 1); err != nil {
		t.Fatal(err)
	}
	if lag := rb.Lag(); lag != 500 {
		t.Errorf("got lag %d; want 500", lag)
	}
	// The cursor is saved within 100 ms; then the segments before it go.
	var after []uint64
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if after, _ = listSegments(dir); len(after) < len(bases) {
			break
		}
	}
	if len(after) >= len(bases) || after[0] > 500 {
		t.Errorf("segments %v after b passed 500 (of %v); want the ones before 500 removed, the rest kept", after, bases)
	}
	j.Close()

	// Restart: b resumes where it committed, a has nothing new, a new
	// output c starts at the end, and the old output b… stays.
	j = open(t, cfg, "a", "b", "c")
	if err := j.Append(context.Background(), alerts(1000, 10)); err != nil {
		t.Fatal(err)
	}
	ra, _ = j.Reader("a")
	rb, _ = j.Reader("b")
	rc, _ := j.Reader("c")
	if got := ids(drain(t, ra)); !reflect.DeepEqual(got, ids(alerts(1000, 10))) {
		t.Errorf("a after restart: got %v; want the 10 new alerts", got)
	}
	if got := ids(drain(t, rb)); !reflect.DeepEqual(got, ids(alerts(500, 510))) {
		t.Errorf("b after restart: got %d alerts; want 500…1009", len(got))
	}
	if got := ids(drain(t, rc)); !reflect.DeepEqual(got, ids(alerts(1000, 10))) {
		t.Errorf("c (new) after restart: got %v; want only the alerts appended after it joined", got)
	}
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if bases, _ = listSegments(dir); len(bases) == 1 {
			break
		}
	}
	if len(bases) != 1 {
		t.Errorf("got segments %v; want only the head once every output has passed the rest", bases)
	}
	j.Close()

	// An output dropped from the configuration loses its cursor.
	j = open(t, cfg, "a")
	if _, err := os.Stat(filepath.Join(dir, "cursors", "b.cursor")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cursor of removed output b: got %v; want it removed", err)
	}
	if _, err := j.Reader("b"); err == nil {
		t.Error("Reader of an output not named at Open: got no error")
	}
}

func TestLinger(t *testing.T) {
	j := open(t, Config{Dir: t.TempDir()}, "a")
	r, _ := j.Reader("a")
	j.Append(context.Background(), alerts(0, 3))
	go func() {
		time.Sleep(20 * time.Millisecond)
		j.Append(context.Background(), alerts(3, 7))
	}()
	es, err := r.Next(context.Background(), nil, 10, 0, 5*time.Second)
	if err != nil || len(es) != 10 {
		t.Fatalf("got %d alerts, %v; want 10: linger waits for the batch to fill", len(es), err)
	}
	j.Append(context.Background(), alerts(10, 2))
	es, err = r.Next(context.Background(), es[:0], 10, 0, 30*time.Millisecond)
	if err != nil || len(es) != 2 {
		t.Fatalf("got %d alerts, %v; want the 2 available once linger passed", len(es), err)
	}
	// maxBytes splits a batch, but one alert always comes.
	j.Append(context.Background(), alerts(12, 5))
	es, _ = r.Next(context.Background(), es[:0], 10, 1, 0)
	if len(es) != 1 {
		t.Errorf("got %d alerts; want 1 with maxBytes 1", len(es))
	}
}

func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	ms := metrics.NewSet()
	j := open(t, Config{Dir: dir, Metrics: ms}, "a")
	j.Append(context.Background(), alerts(0, 10))
	j.Close()
	// A crash mid-append leaves part of a record.
	head := filepath.Join(dir, segName(0))
	whole := appendRecord(nil, 10, 1, AppendAlert(nil, ptr(alert(10))))
	f, _ := os.OpenFile(head, os.O_WRONLY|os.O_APPEND, 0)
	f.Write(whole[:len(whole)/2])
	f.Close()

	j = open(t, Config{Dir: dir, Metrics: ms}, "a")
	if _, next := j.Position(); next != 10 {
		t.Errorf("next offset after a torn tail: got %d; want 10", next)
	}
	if err := j.Append(context.Background(), alerts(10, 5)); err != nil {
		t.Fatal(err)
	}
	r, _ := j.Reader("a")
	if got := ids(drain(t, r)); !reflect.DeepEqual(got, ids(alerts(0, 15))) {
		t.Errorf("got %v; want the 10 alerts before the torn one and the 5 appended after it", got)
	}
	if !strings.Contains(metricsText(ms), fmt.Sprintf("vigil_journal_torn_bytes_total %d", len(whole)/2)) {
		t.Errorf("torn bytes not counted:\n%s", metricsText(ms))
	}
}

func ptr[T any](v T) *T { return &v }

func metricsText(ms *metrics.Set) string {
	var b bytes.Buffer
	ms.WritePrometheus(&b)
	return b.String()
}

func TestCorruptRecordIsSkippedAndCounted(t *testing.T) {
	dir := t.TempDir()
	ms := metrics.NewSet()
	j := open(t, Config{Dir: dir, Metrics: ms}, "a")
	j.Append(context.Background(), alerts(0, 100))
	j.Close()
	// Damage the 40th record's alert bytes.
	path := filepath.Join(dir, segName(0))
	data, _ := os.ReadFile(path)
	var at int
	scanSegment(data, 0, func(r record) {
		if r.offset == 40 {
			at = r.pos + headerSize + metaSize + 3
		}
	})
	data[at] ^= 0xff
	os.WriteFile(path, data, 0o640)

	sc := scanSegment(data, 0, nil)
	if sc.Records != 99 || len(sc.Corrupt) != 1 || sc.Corrupt[0].Lost != 1 || sc.TornBytes != 0 {
		t.Errorf("scan: got %+v; want 99 records and one gap of 1 alert", sc)
	}
	j = open(t, Config{Dir: dir, Metrics: ms}, "a")
	r, _ := j.Reader("a")
	got := drain(t, r)
	want := ids(append(alerts(0, 40), alerts(41, 59)...))
	if !reflect.DeepEqual(ids(got), want) {
		t.Errorf("got %d alerts; want 99: all but the damaged one", len(got))
	}
	if !strings.Contains(metricsText(ms), "vigil_journal_corrupt_records_total 1\n") {
		t.Errorf("the damaged record was not counted:\n%s", metricsText(ms))
	}
}

func TestCorruptLengthInSealedSegment(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentSize: 64 << 10}
	j := open(t, cfg, "a")
	for i := range 10 {
		j.Append(context.Background(), alerts(i*50, 50))
	}
	j.Close()
	bases, _ := listSegments(dir)
	path := filepath.Join(dir, segName(bases[0]))
	data, _ := os.ReadFile(path)
	// Overwrite the length of record 5 with a huge value.
	var at int
	scanSegment(data, 0, func(r record) {
		if r.offset == 5 {
			at = r.pos + 4
		}
	})
	copy(data[at:], []byte{0xff, 0xff, 0xff, 0x7f})
	os.WriteFile(path, data, 0o640)
	j = open(t, cfg, "a")
	r, _ := j.Reader("a")
	got := drain(t, r)
	if len(got) != 499 || got[5].ID != alert(6).ID {
		t.Errorf("got %d alerts (6th %s); want 499, skipping only record 5", len(got), got[5].ID)
	}
}

func TestBlockWhenFull(t *testing.T) {
	cfg := Config{Dir: t.TempDir(), SegmentSize: 64 << 10, MaxSize: 128 << 10}
	j := open(t, cfg, "slow")
	r, _ := j.Reader("slow")
	var appended int
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var err error
	for err == nil {
		if err = j.Append(ctx, alerts(appended, 50)); err == nil {
			appended += 50
		}
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v; want Append to wait until its context ends", err)
	}
	if appended < 200 {
		t.Fatalf("appended %d before blocking; want the cap to be reached, not earlier", appended)
	}
	// The output catches up: Append goes on, and nothing was lost.
	done := make(chan error, 1)
	go func() { done <- j.Append(context.Background(), alerts(appended, 50)) }()
	got := drain(t, r)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got = append(got, drain(t, r)...)
	if !reflect.DeepEqual(ids(got), ids(alerts(0, appended+50))) {
		t.Errorf("got %d alerts; want all %d in order", len(got), appended+50)
	}
}

func TestDropOldestWhenFull(t *testing.T) {
	ms := metrics.NewSet()
	cfg := Config{Dir: t.TempDir(), SegmentSize: 64 << 10, MaxSize: 128 << 10, WhenFull: DropOldest, Metrics: ms}
	j := open(t, cfg, "slow", "fast")
	slow, _ := j.Reader("slow")
	fast, _ := j.Reader("fast")
	var fastGot []pipeline.Alert
	for i := range 40 {
		if err := j.Append(context.Background(), alerts(i*50, 50)); err != nil {
			t.Fatal(err)
		}
		fastGot = append(fastGot, drain(t, fast)...)
	}
	if len(fastGot) != 2000 {
		t.Errorf("the output keeping up got %d alerts; want all 2000", len(fastGot))
	}
	got := drain(t, slow)
	text := metricsText(ms)
	var dropped int
	fmt.Sscanf(text[strings.Index(text, `vigil_journal_dropped_alerts_total{output="slow"}`)+len(`vigil_journal_dropped_alerts_total{output="slow"}`):], "%d", &dropped)
	if dropped == 0 || len(got)+dropped != 2000 {
		t.Errorf("slow output: got %d alerts and %d counted as dropped; want them to add up to 2000, with some dropped", len(got), dropped)
	}
	if got[len(got)-1].ID != alert(1999).ID {
		t.Errorf("slow output's last alert: got %s; want the newest", got[len(got)-1].ID)
	}
	if !strings.Contains(text, `vigil_journal_dropped_alerts_total{output="fast"} 0`) {
		t.Errorf("the output keeping up lost alerts:\n%s", text)
	}
}

// TestDiskFull fills a small tmpfs: Append fails with a clear error and
// keeps no part of the batch; once there is room again it goes on and
// nothing appended before is lost. Needs root (mount); skipped otherwise
// unless CI=true.
func TestDiskFull(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount tmpfs (CI runs as root): %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	jdir := filepath.Join(dir, "journal")
	j := open(t, Config{Dir: jdir, SegmentSize: 64 << 10, MaxSize: 10 << 20}, "a")
	filler := filepath.Join(dir, "filler")
	os.WriteFile(filler, make([]byte, 180<<10), 0o640)
	var appended int
	var err error
	for range 100 {
		if err = j.Append(context.Background(), alerts(appended, 20)); err != nil {
			break
		}
		appended += 20
	}
	if err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("got %v; want a no space left error", err)
	}
	os.Remove(filler)
	if err := j.Append(context.Background(), alerts(appended, 20)); err != nil {
		t.Fatalf("after freeing space: %v", err)
	}
	r, _ := j.Reader("a")
	defer r.Close()
	if got := ids(drain(t, r)); !reflect.DeepEqual(got, ids(alerts(0, appended+20))) {
		t.Errorf("got %d alerts; want %d in order: a failed append keeps nothing of its batch", len(got), appended+20)
	}
	r.Close()
	j.Close()
	j = open(t, Config{Dir: jdir, SegmentSize: 64 << 10}, "a")
	defer j.Close()
	if _, next := j.Position(); next != uint64(appended+20) {
		t.Errorf("after reopening: next %d; want %d", next, appended+20)
	}
}

func TestCorruptCursor(t *testing.T) {
	dir := t.TempDir()
	j := open(t, Config{Dir: dir}, "a")
	j.Append(context.Background(), alerts(0, 10))
	r, _ := j.Reader("a")
	drain(t, r)
	j.Append(context.Background(), alerts(10, 10))
	j.Close()
	os.WriteFile(filepath.Join(dir, "cursors", "a.cursor"), []byte("garbage"), 0o640)
	j = open(t, Config{Dir: dir}, "a")
	r, _ = j.Reader("a")
	if got := drain(t, r); len(got) != 20 {
		t.Errorf("got %d alerts; want all 20 kept again after a corrupt cursor (duplicates, not loss)", len(got))
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "dir is required"},
		{Config{Dir: "x", WhenFull: "panic"}, "when_full"},
		{Config{Dir: "x", SegmentSize: 1 << 20, MaxSize: 1 << 20}, "two segments"},
		{Config{Dir: "x", SegmentSize: 10}, "64 KiB"},
		{Config{Dir: "x", SyncEvery: -1}, "negative"},
	} {
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v; want an error about %q", tc.cfg, err, tc.want)
		}
	}
	if _, err := Open(Config{Dir: t.TempDir()}, []string{"../x"}); err == nil {
		t.Error("an output name with a slash: got no error")
	}
}

func FuzzScanSegment(f *testing.F) {
	var seed []byte
	for i := range 5 {
		seed = appendRecord(seed, uint64(i), 1, AppendAlert(nil, ptr(alert(i))))
	}
	f.Add(seed)
	f.Add(seed[:len(seed)-3])
	f.Fuzz(func(t *testing.T, data []byte) {
		prev := uint64(0)
		first := true
		sc := scanSegment(data, 0, func(r record) {
			if !first && r.offset <= prev {
				t.Fatalf("offsets not increasing: %d after %d", r.offset, prev)
			}
			first, prev = false, r.offset
			var a pipeline.Alert
			DecodeAlert(r.alert, &a)
		})
		if sc.TornBytes < 0 || sc.TornBytes > len(data) {
			t.Fatalf("torn bytes %d of %d", sc.TornBytes, len(data))
		}
	})
}

// TestCorruptLastRecord: the head's last record is all there (its length
// is complete) but fails its checksum. That is damage, not a torn write: it
// is reported and counted as corruption, not cut off as a crash's
// unacknowledged tail, and its offset is not given to the next alert.
func TestCorruptLastRecord(t *testing.T) {
	dir := t.TempDir()
	ms := metrics.NewSet()
	j := open(t, Config{Dir: dir, Metrics: ms}, "a")
	j.Append(context.Background(), alerts(0, 10))
	j.Close()
	path := filepath.Join(dir, segName(0))
	data, _ := os.ReadFile(path)
	var at int
	scanSegment(data, 0, func(r record) {
		if r.offset == 9 {
			at = r.pos + headerSize + metaSize + 3
		}
	})
	data[at] ^= 0xff
	os.WriteFile(path, data, 0o640)

	rep, err := Check(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Damaged() || rep.Lost() != 1 || rep.Segments[0].TornBytes != 0 || rep.Next != 10 {
		t.Errorf("check: damaged %v, lost %d, torn %d bytes, next %d; want damage of 1 alert, no torn tail, next 10",
			rep.Damaged(), rep.Lost(), rep.Segments[0].TornBytes, rep.Next)
	}

	var logs syncbuf.Buffer
	j = open(t, Config{Dir: dir, Metrics: ms, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, "a")
	if _, next := j.Position(); next != 10 {
		t.Errorf("next offset: got %d; want 10 (the damaged record's offset is not reused)", next)
	}
	if s := logs.String(); !strings.Contains(s, "corrupt records") || strings.Contains(s, "torn") {
		t.Errorf("log: got %q; want the damage reported as corruption, not a torn write", s)
	}
	if err := j.Append(context.Background(), alerts(10, 5)); err != nil {
		t.Fatal(err)
	}
	r, _ := j.Reader("a")
	if got, want := ids(drain(t, r)), ids(append(alerts(0, 9), alerts(10, 5)...)); !reflect.DeepEqual(got, want) {
		t.Errorf("got %v; want %v: all but the damaged one", got, want)
	}
	text := metricsText(ms)
	if !strings.Contains(text, "vigil_journal_corrupt_records_total 1\n") || !strings.Contains(text, "vigil_journal_torn_bytes_total 0\n") {
		t.Errorf("want the damaged record counted as corrupt, no torn bytes:\n%s", text)
	}
}
