package sim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// WriteLog writes the whole run of cfg to w, one message per line ("topic
// payload" lines when cfg.Topics), and returns its labels. cfg.Duration must
// not be 0.
func WriteLog(w io.Writer, cfg Config) ([]Label, error) {
	if cfg.Duration == 0 {
		return nil, errors.New("sim: WriteLog needs a finite Duration")
	}
	g, err := New(cfg)
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	for {
		m, ok := g.Next()
		if !ok {
			break
		}
		if cfg.Topics {
			bw.WriteString(m.Topic)
			bw.WriteByte(' ')
		}
		bw.Write(m.Payload)
		if err := bw.WriteByte('\n'); err != nil {
			return nil, fmt.Errorf("sim: write log: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("sim: write log: %w", err)
	}
	return g.Labels(), nil
}
