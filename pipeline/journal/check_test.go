package journal

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestCheckRepairInspect(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, SegmentSize: 64 << 10}
	j := open(t, cfg, "a", "b")
	for i := range 10 {
		j.Append(context.Background(), alerts(i*50, 50))
	}
	ra, _ := j.Reader("a")
	es, _ := ra.Next(context.Background(), nil, 120, 0, 0)
	ra.Commit(es[len(es)-1].Offset + 1)
	ra.Close()
	j.Close()

	r, err := Check(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r.Damaged() || r.Next != 500 || len(r.Cursors) != 2 || r.Cursors[0].Next != 120 || r.Cursors[1].Output != "b" {
		t.Fatalf("clean journal: got %+v", r)
	}
	var n int
	for _, s := range r.Segments {
		n += s.Records
	}
	if n != 500 {
		t.Errorf("got %d records; want 500", n)
	}

	// Damage a record in the first segment, tear the head, and break a cursor.
	first := filepath.Join(dir, segName(r.Segments[0].Base))
	data, _ := os.ReadFile(first)
	var at int
	scanSegment(data, 0, func(rec record) {
		if rec.offset == 7 {
			at = rec.pos + 20
		}
	})
	data[at] ^= 1
	os.WriteFile(first, data, 0o640)
	head := filepath.Join(dir, segName(r.Segments[len(r.Segments)-1].Base))
	f, _ := os.OpenFile(head, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25})
	f.Close()
	os.WriteFile(filepath.Join(dir, "cursors", "b.cursor"), []byte("x"), 0o640)

	r, _ = Check(dir)
	if !r.Damaged() || r.Lost() != 1 || r.Segments[len(r.Segments)-1].TornBytes != 25 || r.Cursors[1].Err == nil {
		t.Fatalf("damaged journal: got lost %d, segments %+v, cursors %+v", r.Lost(), r.Segments, r.Cursors)
	}
	if _, err := Repair(dir); err != nil {
		t.Fatal(err)
	}
	r, _ = Check(dir)
	if r.Damaged() || r.Next != 500 || len(r.Cursors) != 1 {
		t.Errorf("after repair: got %+v; want no damage, next 500, b's broken cursor removed", r)
	}
	var got []string
	Inspect(dir, 5, func(e Entry) bool {
		got = append(got, e.Alert.ID)
		return len(got) < 4
	})
	if want := []string{alert(5).ID, alert(6).ID, alert(8).ID, alert(9).ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("inspect from 5: got %v; want %v (7 was lost)", got, want)
	}
}

func TestOneProcessPerJournal(t *testing.T) {
	dir := t.TempDir()
	j := open(t, Config{Dir: dir}, "a")
	if _, err := Repair(dir); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("repair while open: got %v; want an in-use error", err)
	}
	j.Close()
	if _, err := Repair(dir); err != nil {
		t.Errorf("repair after close: %v", err)
	}
}
