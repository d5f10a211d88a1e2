package jetstream

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	natsclient "github.com/nats-io/nats.go"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-iot/vigil/internal/natstest"
	"github.com/vigil-iot/vigil/pipeline"
)

// TestPartitionSource: a partition reads back in stream order with its
// topics, arrival times and stream sequences, only its own messages; a
// tick message ends a batch with the stream clock; a source started after
// a sequence (a checkpoint's mark) continues right after it.
func TestPartitionSource(t *testing.T) {
	_, js := connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := Config{Partitions: 4}
	if err := EnsureStream(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	const p = 2
	var want []int // telemetry seqs published to partition p, in order
	var seqs []uint64
	tick := int64(1_780_000_500) * 1e9
	for i := range 200 {
		dev := "dev-" + strconv.Itoa(i%9)
		m := &natsclient.Msg{Subject: Subject(dev, cfg.Partitions), Data: telemetry(i, dev), Header: natsclient.Header{}}
		m.Header.Set(TopicHeader, "plant/"+dev)
		m.Header.Set(ArrivalHeader, strconv.FormatInt(int64(i)*1e6+1, 10))
		if i == 100 {
			tm := natsclient.NewMsg(PartitionSubject(p, TickToken))
			tm.Data = strconv.AppendInt(nil, tick, 10)
			if _, err := js.PublishMsg(ctx, tm); err != nil {
				t.Fatal(err)
			}
		}
		ack, err := js.PublishMsg(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if PartitionOf(dev, cfg.Partitions) == p {
			want = append(want, i)
			seqs = append(seqs, ack.Sequence)
		}
	}
	if len(want) < 20 {
		t.Fatalf("only %d messages in partition %d: pick other devices", len(want), p)
	}
	read := func(after uint64, n int) (got []int, lines []uint64, clocks []int64, marks []uint64) {
		src, err := NewPartitionSource(ctx, js, PartitionSourceConfig{Partition: p, After: after})
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		var b pipeline.FrameBatch
		for len(got) < n {
			b.Reset()
			if err := src.ReadBatch(ctx, &b, 7); err != nil {
				t.Fatal(err)
			}
			for i := range b.Frames {
				f := &b.Frames[i]
				s := seqOf(b.Payload(f))
				got = append(got, s)
				lines = append(lines, uint64(f.Line))
				if f.Topic != "plant/dev-"+strconv.Itoa(s%9) || f.Arrival != int64(s)*1e6+1 {
					t.Errorf("message %d: topic %q arrival %d", s, f.Topic, f.Arrival)
				}
			}
			if b.Clock != 0 {
				clocks = append(clocks, b.Clock)
			}
			marks = append(marks, b.Mark)
		}
		return
	}
	got, lines, clocks, marks := read(0, len(want))
	if !slices.Equal(got, want) {
		t.Fatalf("read %v; want %v", got, want)
	}
	if !slices.Equal(lines, seqs) {
		t.Errorf("lines %v; want the stream sequences %v", lines, seqs)
	}
	if !slices.Equal(clocks, []int64{tick}) {
		t.Errorf("clocks %v; want the one tick %d", clocks, tick)
	}
	if marks[len(marks)-1] != seqs[len(seqs)-1] {
		t.Errorf("last mark %d; want the last message's sequence %d", marks[len(marks)-1], seqs[len(seqs)-1])
	}
	// Resumed after the 10th message: the 11th comes next.
	got, _, _, _ = read(seqs[9], len(want)-10)
	if !slices.Equal(got, want[10:]) {
		t.Errorf("resumed after sequence %d: read %v; want %v", seqs[9], got, want[10:])
	}
}

// TestPartitionSourceNodeLoss: in a 3-node cluster with an R3 stream, the
// node serving a partition's ordered consumer is killed while messages
// keep coming: the source reads on, every message once and in order.
func TestPartitionSourceNodeLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := natstest.StartCluster(t, 3)
	js := natstest.JetStream(t, c.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cfg := Config{Partitions: 1, Replicas: 3}
	var err error
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if err = EnsureStream(ctx, js, cfg); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	src, err := NewPartitionSource(ctx, js, PartitionSourceConfig{Partition: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	const n = 400
	go func() {
		for i := range n {
			m := &natsclient.Msg{Subject: Subject("dev", 1), Data: telemetry(i, "dev"), Header: natsclient.Header{}}
			m.Header.Set(jetstream.MsgIDHeader, strconv.Itoa(i))
			for ctx.Err() == nil {
				if _, err := js.PublishMsg(ctx, m); err == nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	var got []int
	var b pipeline.FrameBatch
	killed := false
	for len(got) < n {
		b.Reset()
		rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
		err := src.ReadBatch(rctx, &b, 64)
		rcancel()
		if err != nil {
			t.Fatalf("after %d messages (node killed: %t): %v", len(got), killed, err)
		}
		for i := range b.Frames {
			got = append(got, seqOf(b.Payload(&b.Frames[i])))
		}
		if !killed && len(got) >= n/4 {
			info, err := src.cons.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			host := info.Cluster.Leader
			for i, s := range c.Servers {
				if host == "n"+strconv.Itoa(i) {
					t.Logf("killing %s, the node serving the ordered consumer", host)
					s.Kill()
					killed = true
				}
			}
			if !killed {
				t.Fatalf("consumer on %q, not a node of the cluster", host)
			}
		}
	}
	for i, s := range got {
		if s != i {
			t.Fatalf("message %d is %d: lost or out of order around the kill", i, s)
		}
	}
}

// BenchmarkPartitionSource: reading one partition of 100,000 stored
// messages (~120 bytes, with the bridge's headers) through PartitionSource
// into frame batches of 512; ns/op and allocs/op are per message.
func BenchmarkPartitionSource(b *testing.B) {
	js := natstest.JetStream(b, natstest.Start(b).URL())
	ctx := context.Background()
	if err := EnsureStream(ctx, js, Config{Partitions: 1}); err != nil {
		b.Fatal(err)
	}
	const n = 100_000
	for i := range n {
		m := &natsclient.Msg{Subject: Subject("dev", 1), Data: telemetry(i, "dev"), Header: natsclient.Header{}}
		m.Header.Set(TopicHeader, "plant/dev")
		m.Header.Set(ArrivalHeader, strconv.FormatInt(int64(i)*1e6, 10))
		if _, err := js.PublishMsgAsync(m); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	b.ResetTimer()
	b.ReportAllocs()
	read := 0
	for read < b.N {
		src, err := NewPartitionSource(ctx, js, PartitionSourceConfig{Partition: 0})
		if err != nil {
			b.Fatal(err)
		}
		var fb pipeline.FrameBatch
		for got := 0; got < n && read < b.N; {
			fb.Reset()
			if err := src.ReadBatch(ctx, &fb, 512); err != nil {
				b.Fatal(err)
			}
			got += fb.Len()
			read += fb.Len()
		}
		src.Close()
	}
}

// TestPartitionSourcePacked: packed messages read back as their frames, in
// order, with topics and arrivals, every frame's Line the pack's stream
// sequence; a batch never splits a pack (its Mark always covers whole
// packs, so a checkpoint never lands inside one); a damaged pack yields
// the frames before the damage, is counted, and the packs after it read
// as usual.
func TestPartitionSourcePacked(t *testing.T) {
	_, js := connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := Config{Partitions: 2}
	if err := EnsureStream(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	const p = 1
	var want []int
	seqOfPack := map[int]uint64{} // telemetry seq -> stream sequence of its pack
	i := 0
	for k := range 30 {
		size := 1 + k%10
		body := AppendPackHeader(nil)
		var in []int
		for range size {
			body = AppendPack(body, "plant/d"+strconv.Itoa(i%5), int64(i)*1e6+1, telemetry(i, "d"))
			in = append(in, i)
			i++
		}
		damaged := k == 13
		if damaged {
			body = append(body, 0x05) // a frame's start and nothing more
		}
		ack, err := js.PublishMsg(ctx, &natsclient.Msg{Subject: PartitionSubject(p, PackToken), Data: body})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range in {
			want = append(want, s)
			seqOfPack[s] = ack.Sequence
		}
	}
	bad := metrics.NewSet().NewCounter("damaged")
	src, err := NewPartitionSource(ctx, js, PartitionSourceConfig{Partition: p, DamagedPacks: bad})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var got []int
	var b pipeline.FrameBatch
	for len(got) < len(want) {
		b.Reset()
		if err := src.ReadBatch(ctx, &b, 3); err != nil {
			t.Fatal(err)
		}
		for i := range b.Frames {
			f := &b.Frames[i]
			s := seqOf(b.Payload(f))
			got = append(got, s)
			if f.Topic != "plant/d"+strconv.Itoa(s%5) || f.Arrival != int64(s)*1e6+1 || uint64(f.Line) != seqOfPack[s] {
				t.Errorf("reading %d: topic %q arrival %d line %d; want line %d", s, f.Topic, f.Arrival, f.Line, seqOfPack[s])
			}
		}
		if last := b.Frames[len(b.Frames)-1]; uint64(last.Line) != b.Mark {
			t.Errorf("batch mark %d; want its last pack's sequence %d", b.Mark, last.Line)
		}
		if s := got[len(got)-1]; s+1 < len(want) && seqOfPack[s+1] == seqOfPack[s] {
			t.Errorf("a batch ended inside the pack at sequence %d", seqOfPack[s])
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("read %v; want %v", got, want)
	}
	if bad.Get() != 1 {
		t.Errorf("damaged packs counted: %d; want 1", bad.Get())
	}
}

// TestPartitionSourceIdle: on a partition with nothing to read, ReadBatch
// returns an empty batch after Idle instead of waiting for ever, so the
// pipeline reading it can take snapshots between reads.
func TestPartitionSourceIdle(t *testing.T) {
	_, js := connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := EnsureStream(ctx, js, Config{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	src, err := NewPartitionSource(ctx, js, PartitionSourceConfig{Partition: 1, Idle: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for range 3 {
		var b pipeline.FrameBatch
		if err := src.ReadBatch(ctx, &b, 10); err != nil || b.Len() != 0 || b.Mark != 0 {
			t.Fatalf("idle read: %d frames, mark %d, %v; want an empty batch and no error", b.Len(), b.Mark, err)
		}
	}
}

// TestPartitionSourceMisrouted: a message on a device's subject in a
// partition the device does not hash to is read (not lost) and counted;
// one on its own partition is not.
func TestPartitionSourceMisrouted(t *testing.T) {
	_, js := connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 4
	if err := EnsureStream(ctx, js, Config{Partitions: n}); err != nil {
		t.Fatal(err)
	}
	const p = 1
	var right, wrong string
	for i := 0; right == "" || wrong == ""; i++ {
		dev := "dev-" + strconv.Itoa(i)
		if PartitionOf(dev, n) == p {
			right = dev
		} else {
			wrong = dev
		}
	}
	for i, dev := range []string{right, wrong} {
		m := &natsclient.Msg{Subject: PartitionSubject(p, Escape(dev)), Data: telemetry(i, dev)}
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	mis := metrics.NewSet().NewCounter("misrouted")
	src, err := NewPartitionSource(ctx, js, PartitionSourceConfig{Partition: p, Partitions: n, Misrouted: mis})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var got []int
	for len(got) < 2 {
		var b pipeline.FrameBatch
		if err := src.ReadBatch(ctx, &b, 10); err != nil {
			t.Fatal(err)
		}
		for i := range b.Frames {
			got = append(got, seqOf(b.Payload(&b.Frames[i])))
		}
	}
	if !slices.Equal(got, []int{0, 1}) || mis.Get() != 1 {
		t.Errorf("read %v, %d counted misrouted; want both messages read and one counted", got, mis.Get())
	}
}
