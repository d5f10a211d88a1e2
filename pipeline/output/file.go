package output

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/vigil-iot/vigil/pipeline"
)

// File is an Output appending one formatted alert per line to a file.
// With Sync (the default for the file output in the configuration), Write
// returns after an fsync, so a written batch survives a power loss.
type File struct {
	Path   string
	Format Formatter
	Sync   bool

	f   *os.File
	buf []byte
}

// Connect opens (creating) the file for appending.
func (o *File) Connect(context.Context) error {
	if o.f != nil {
		o.f.Close()
		o.f = nil
	}
	f, err := os.OpenFile(o.Path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	o.f = f
	return nil
}

// Write implements Output.
func (o *File) Write(_ context.Context, batch []pipeline.Alert) error {
	o.buf = appendLines(o.buf[:0], o.Format, batch)
	if _, err := o.f.Write(o.buf); err != nil {
		return fmt.Errorf("write %s: %w", o.Path, err)
	}
	if o.Sync {
		if err := o.f.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", o.Path, err)
		}
	}
	return nil
}

// Close closes the file.
func (o *File) Close(context.Context) error {
	if o.f == nil {
		return nil
	}
	err := o.f.Close()
	o.f = nil
	return err
}

// Writer is an Output writing one formatted alert per line to an
// io.Writer, such as standard output.
type Writer struct {
	W      io.Writer
	Format Formatter
	buf    []byte
}

// Connect implements Output; there is nothing to connect.
func (o *Writer) Connect(context.Context) error { return nil }

// Write implements Output.
func (o *Writer) Write(_ context.Context, batch []pipeline.Alert) error {
	o.buf = appendLines(o.buf[:0], o.Format, batch)
	_, err := o.W.Write(o.buf)
	return err
}

// Close implements Output; the writer is not closed.
func (o *Writer) Close(context.Context) error { return nil }

func appendLines(b []byte, f Formatter, batch []pipeline.Alert) []byte {
	for i := range batch {
		if f == nil {
			b = batch[i].AppendJSON(b)
		} else {
			b = f.Append(b, &batch[i])
		}
		b = append(b, '\n')
	}
	return b
}

// SinkOutput adapts a pipeline.Sink (an in-process consumer such as the
// demo's view) to an Output.
type SinkOutput struct{ Sink pipeline.Sink }

// Connect implements Output.
func (o SinkOutput) Connect(context.Context) error { return nil }

// Write implements Output.
func (o SinkOutput) Write(ctx context.Context, batch []pipeline.Alert) error {
	return o.Sink.Write(ctx, batch)
}

// Close implements Output.
func (o SinkOutput) Close(context.Context) error { return o.Sink.Close() }
