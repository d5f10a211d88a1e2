package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
	"github.com/vigil-iot/vigil/pipeline/journal"
)

// errDamaged is "vigil journal check" finding damage it did not repair.
var errDamaged = errors.New("journal is damaged; run 'vigil journal check --repair DIR' with Vigil stopped")

// runJournal is "vigil journal check|inspect".
func runJournal(_ context.Context, e *env, args []string) error {
	usage := "vigil journal check [--repair] DIR | vigil journal inspect [--from OFFSET | --output NAME] [--limit N] DIR"
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, usage)
	}
	switch args[0] {
	case "check":
		fs := newFlags(e, "journal check", "[--repair] DIR")
		repair := fs.Bool("repair", false, "rewrite damaged segments with their intact records and drop unreadable cursors (stop Vigil first)")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: %s", errUsage, usage)
		}
		return journalCheck(e, fs.Arg(0), *repair)
	case "inspect":
		fs := newFlags(e, "journal inspect", "[--from OFFSET | --output NAME] [--limit N] DIR")
		from := fs.Uint64("from", 0, "first `offset` to print")
		out := fs.String("output", "", "print what output `NAME` has not delivered yet (from its cursor)")
		limit := fs.Int("limit", 0, "print at most `N` alerts (0: all)")
		if err := parseFlags(fs, args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return fmt.Errorf("%w: %s", errUsage, usage)
		}
		dir := fs.Arg(0)
		if *out != "" {
			c, err := journal.CursorOf(dir, *out)
			if err != nil {
				return fmt.Errorf("output %s: %w", *out, err)
			}
			*from = c
		}
		w := bufio.NewWriter(e.stdout)
		n := 0
		var b []byte
		err := journal.Inspect(dir, *from, func(en journal.Entry) bool {
			b = append(b[:0], `{"offset":`...)
			b = strconv.AppendUint(b, en.Offset, 10)
			b = append(b, `,"appended":"`...)
			b = time.Unix(0, en.Appended).UTC().AppendFormat(b, time.RFC3339Nano)
			b = append(b, `","event":`...)
			b = pipeline.AppendJSONString(b, en.Alert.EventID())
			b = append(b, `,"alert":`...)
			b = en.Alert.AppendJSON(b)
			b = append(b, "}\n"...)
			w.Write(b)
			n++
			return *limit <= 0 || n < *limit
		})
		if ferr := w.Flush(); err == nil {
			err = ferr
		}
		return err
	}
	return fmt.Errorf("%w: %s", errUsage, usage)
}

func journalCheck(e *env, dir string, repair bool) error {
	var r *journal.Report
	var err error
	if repair {
		r, err = journal.Repair(dir)
	} else {
		r, err = journal.Check(dir)
	}
	if err != nil {
		return err
	}
	w := e.stdout
	var records int
	for _, s := range r.Segments {
		records += s.Records
		state := "ok"
		for _, g := range s.Corrupt {
			if g.Bytes > 0 {
				state = "DAMAGED"
			}
			fmt.Fprintf(w, "%s: %d bytes unreadable at byte %d, %d alerts lost\n", filepath.Base(segPath(s.Base)), g.Bytes, g.Pos, g.Lost)
		}
		if s.TornBytes > 0 {
			state = "TORN"
			fmt.Fprintf(w, "%s: torn write of %d bytes at the tail (cut off when Vigil opens the journal)\n", filepath.Base(segPath(s.Base)), s.TornBytes)
		}
		first, last := "-", "-"
		if s.Records > 0 {
			first, last = strconv.FormatUint(s.First, 10), strconv.FormatUint(s.Last, 10)
		}
		fmt.Fprintf(w, "segment %s  %8d bytes  %6d alerts  offsets %s…%s  %s\n", filepath.Base(segPath(s.Base)), s.Size, s.Records, first, last, state)
	}
	for _, c := range r.Cursors {
		if c.Err != nil {
			fmt.Fprintf(w, "cursor %-20s UNREADABLE: %v\n", c.Output, c.Err)
			continue
		}
		fmt.Fprintf(w, "cursor %-20s at %d, %d alerts to deliver\n", c.Output, c.Next, r.Next-min(c.Next, r.Next))
	}
	fmt.Fprintf(w, "%d segments, %d alerts, next offset %d, %d alerts lost to damage\n", len(r.Segments), records, r.Next, r.Lost())
	switch {
	case repair && r.Damaged():
		fmt.Fprintln(w, "repaired: damaged segments rewritten with their intact records; unreadable cursors removed")
	case r.Damaged():
		return errDamaged
	}
	return nil
}

func segPath(base uint64) string { return fmt.Sprintf("%020d.seg", base) }
