package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
)

// startProgress draws a progress line on w while a replay runs, if w is a
// terminal: messages, messages per second and, when the inputs are plain
// files of known size, a bar and the time left. It returns a function that
// stops it and clears the line. Nothing is drawn when w is not a terminal.
func startProgress(w io.Writer, pl *pipeline.Pipeline, paths []string) (stop func()) {
	if !isTerminal(w) {
		return func() {}
	}
	var total int64
	for _, p := range paths {
		fi, err := os.Stat(p)
		if p == "-" || err != nil || strings.HasSuffix(p, ".gz") {
			total = 0 // unknown: no bar, no ETA
			break
		}
		total += fi.Size()
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-done:
				fmt.Fprint(w, "\r\x1b[K")
				return
			case now := <-t.C:
				fmt.Fprint(w, "\r\x1b[K"+progressLine(pl.Stats(), total, now.Sub(start)))
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// progressLine renders one progress line. Bytes read are payload bytes (the
// line breaks are not counted), close enough for a bar.
func progressLine(st pipeline.Stats, total int64, elapsed time.Duration) string {
	rate := float64(st.Frames) / max(elapsed.Seconds(), 1e-9)
	line := fmt.Sprintf("%d messages, %.0f/s", st.Frames, rate)
	if total > 0 {
		frac := min(float64(st.Bytes)/float64(total), 1)
		const width = 30
		bar := strings.Repeat("█", int(frac*width)) + strings.Repeat("░", width-int(frac*width))
		eta := "—"
		if frac > 0.01 {
			eta = (time.Duration(float64(elapsed)/frac) - elapsed).Round(time.Second).String()
		}
		line = fmt.Sprintf("%s %3.0f%%  %s  ETA %s", bar, frac*100, line, eta)
	}
	return line
}
