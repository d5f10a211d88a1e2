package main

import (
	"flag"
	"fmt"
	"unicode/utf8"

	"github.com/vigil-iot/vigil/pipeline/file"
)

// csvFlags are the CSV input flags replay and tune share.
type csvFlags struct {
	time, device, label, sep string
}

func (c *csvFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.time, "csv-time", "timestamp", "CSV: the event-time column")
	fs.StringVar(&c.device, "csv-device", "node_id", "CSV: the device column (without it, the file name names the device)")
	fs.StringVar(&c.label, "csv-label", "label", "CSV: the ground-truth column that --labels column reads (>= 1: anomalous)")
	fs.StringVar(&c.sep, "csv-sep", "", `CSV: the field separator, one character or "tab" (default: from the header line: a comma, else ";" or a tab)`)
}

// mapping returns the column mapping the flags describe.
func (c *csvFlags) mapping() (file.CSVMapping, error) {
	m := file.CSVMapping{Time: c.time, Device: c.device, Label: c.label}
	switch c.sep {
	case "":
	case "tab", `\t`:
		m.Comma = '\t'
	default:
		r, n := utf8.DecodeRuneInString(c.sep)
		if n != len(c.sep) || r == utf8.RuneError {
			return m, fmt.Errorf("%w: --csv-sep %q: want one character or \"tab\"", errUsage, c.sep)
		}
		m.Comma = r
	}
	if err := (file.Options{CSV: m}).Validate(); err != nil {
		return m, fmt.Errorf("%w: %w", errUsage, err)
	}
	return m, nil
}
