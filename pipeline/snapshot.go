package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
)

// Snapshot record kinds: the sections of a snapshot (package state writes
// them to a file).
const (
	RecordPosition byte = 1 // the stream position (key "")
	RecordFleet    byte = 2 // the fleet judge (key "")
	RecordEngine   byte = 3 // a shard processor's engine-wide state
	RecordDevice   byte = 4 // one device (key: its ID)
)

// RecordWriter receives the records of a snapshot. value is only valid
// during the call.
type RecordWriter interface {
	Add(kind byte, key string, value []byte) error
}

// Snapshotter is implemented by processors whose learned state can be
// saved. SnapshotTo is called on the shard's goroutine at a barrier: the
// processor has judged every reading before it and none after.
type Snapshotter interface {
	SnapshotTo(w RecordWriter) error
}

// ErrNotRunning is returned by Snapshot when the pipeline is not running.
var ErrNotRunning = errors.New("pipeline: not running")

// snapRequest is a barrier asked for by Snapshot or Reconfigure.
type snapRequest struct {
	w    RecordWriter    // a snapshot's destination; nil for a reconfiguration
	done chan snapResult // buffered 1

	// A reconfiguration: apply runs on each shard, then merge on the
	// merge stage.
	apply func(shard int, clock int64, proc Processor, out []Alert) []Alert
	merge func()
}

type snapResult struct {
	pos   Position
	err   error
	fleet []byte       // the fleet judge's record, when there is one
	parts []memRecords // each shard's records, in shard order
}

// barrier travels through the stages in a batch with no frames: each shard
// writes its processor's records into its part (in memory), and the merge
// stage, which sees the batch after every shard, hands them to Snapshot,
// which writes them to its writer once ingest has resumed.
type barrier struct {
	req   *snapRequest
	parts []memRecords
	errs  []error
}

// memRecords keeps a shard's records in memory, in chunks: a shard is held
// at the barrier while it writes them, and one growing buffer would copy
// everything written so far each time it grows (hundreds of megabytes at a
// million devices).
type memRecords struct {
	chunks [][]byte
	recs   []memRecord
}

// memChunk is the size of a chunk; a larger record gets a chunk of its own.
const memChunk = 1 << 20

type memRecord struct {
	kind       byte
	key        string
	chunk      int
	start, end int
}

func (m *memRecords) Add(kind byte, key string, value []byte) error {
	n := len(m.chunks)
	if n == 0 || len(m.chunks[n-1])+len(value) > cap(m.chunks[n-1]) {
		m.chunks = append(m.chunks, make([]byte, 0, max(memChunk, len(value))))
		n++
	}
	c := &m.chunks[n-1]
	start := len(*c)
	*c = append(*c, value...)
	m.recs = append(m.recs, memRecord{kind, key, n - 1, start, len(*c)})
	return nil
}

func (m *memRecords) writeTo(w RecordWriter) error {
	for _, r := range m.recs {
		if err := w.Add(r.kind, r.key, m.chunks[r.chunk][r.start:r.end]); err != nil {
			return err
		}
	}
	return nil
}

// Snapshot takes a snapshot of everything learned, consistent at one
// stream position: a barrier goes through the stages behind the batches
// already read, each shard writes its processor's state when it reaches the
// barrier, and the records go to w in a fixed order: the position, the fleet
// judge (Config.FleetSnapshot), then each shard's. It returns the position,
// or an error when ctx ends first, a processor fails, or the pipeline is
// not running. Ingest pauses at each shard for as long as it takes that
// shard to encode its state into memory; w is written afterwards, on the
// caller's goroutine, while ingest goes on.
func (p *Pipeline) Snapshot(ctx context.Context, w RecordWriter) (Position, error) {
	req := &snapRequest{w: w, done: make(chan snapResult, 1)}
	select {
	case p.snapReq <- req:
	case <-p.readDone:
		return Position{}, ErrNotRunning
	case <-ctx.Done():
		return Position{}, ctx.Err()
	}
	var res snapResult
	select {
	case res = <-req.done:
	case <-ctx.Done():
		return Position{}, ctx.Err()
	}
	if res.err != nil {
		return Position{}, res.err
	}
	// Ingest has resumed: the records, kept in memory at the barrier, go to
	// w (a file, fsynced) on the caller's goroutine, not the pipeline's.
	err := w.Add(RecordPosition, "", AppendPosition(nil, res.pos))
	if err == nil && res.fleet != nil {
		err = w.Add(RecordFleet, "", res.fleet)
	}
	for i := range res.parts {
		if err == nil {
			err = res.parts[i].writeTo(w)
		}
	}
	if err != nil {
		return Position{}, fmt.Errorf("pipeline: snapshot: %w", err)
	}
	return res.pos, nil
}

// atShard does a shard's part of a barrier: it writes the processor's
// snapshot, or applies a reconfiguration, whose alerts go in out.
func (b *barrier) atShard(shard int, clock int64, proc Processor, out []Alert) []Alert {
	if b.req.apply != nil {
		return b.req.apply(shard, clock, proc, out)
	}
	if s, ok := proc.(Snapshotter); ok {
		b.errs[shard] = s.SnapshotTo(&b.parts[shard])
	}
	return out
}

// Reconfigure changes what the processors do, at one stream position: a
// barrier goes through the stages behind the batches already read, apply
// runs on each shard's goroutine when the barrier reaches it (every reading
// before it judged as before, none after), then merge runs on the merge
// stage's goroutine, the one that calls Fleet. clock is the stream clock at
// the barrier. The alerts apply appends (an
// alert resolved because its check was switched off, say) are written to
// the sink like any other. It returns when every shard has applied it, or
// with an error when ctx ends first or the pipeline is not running.
func (p *Pipeline) Reconfigure(ctx context.Context, apply func(shard int, clock int64, proc Processor, out []Alert) []Alert, merge func()) error {
	req := &snapRequest{apply: apply, merge: merge, done: make(chan snapResult, 1)}
	select {
	case p.snapReq <- req:
	case <-p.readDone:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case res := <-req.done:
		return res.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// finish answers the request of a barrier batch (in the merge stage): for a
// snapshot, the position, the fleet's record and the shards' records.
func (p *Pipeline) finish(b *batch) {
	br := b.barrier
	if br.req.apply != nil {
		if br.req.merge != nil {
			br.req.merge()
		}
		br.req.done <- snapResult{}
		b.barrier = nil
		return
	}
	res := snapResult{pos: Position{Start: b.start, Clock: b.clock, Seq: b.seq, Mark: b.mark}, parts: br.parts}
	if err := errors.Join(br.errs...); err != nil {
		res.err = fmt.Errorf("pipeline: snapshot: %w", err)
	} else if p.cfg.FleetSnapshot != nil {
		res.fleet = p.cfg.FleetSnapshot() // on this goroutine, the one that calls Fleet
	}
	br.req.done <- res // buffered: Snapshot writes the records
	b.barrier = nil
}

// AppendPosition encodes a stream position (a RecordPosition's value).
// Version 2 adds the source's mark; a position without one is written as
// version 1, which every reader of snapshots understands.
func AppendPosition(b []byte, p Position) []byte {
	v := byte(1)
	if p.Mark != 0 {
		v = 2
	}
	b = append(b, v)
	b = binary.AppendVarint(b, p.Start)
	b = binary.AppendVarint(b, p.Clock)
	b = binary.AppendUvarint(b, p.Seq)
	if v == 2 {
		b = binary.AppendUvarint(b, p.Mark)
	}
	return b
}

// DecodePosition decodes what AppendPosition wrote.
func DecodePosition(b []byte) (Position, error) {
	var p Position
	if len(b) < 1 || b[0] < 1 || b[0] > 2 {
		return p, errors.New("pipeline: position record of an unknown version")
	}
	r := bytes.NewReader(b[1:])
	var err1, err2, err3, err4 error
	p.Start, err1 = binary.ReadVarint(r)
	p.Clock, err2 = binary.ReadVarint(r)
	p.Seq, err3 = binary.ReadUvarint(r)
	if b[0] == 2 {
		p.Mark, err4 = binary.ReadUvarint(r)
	}
	if err := errors.Join(err1, err2, err3, err4); err != nil || r.Len() != 0 {
		return p, errors.New("pipeline: bad position record")
	}
	return p, nil
}
