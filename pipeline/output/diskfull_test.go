package output

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline/journal"
)

// TestDiskFullHoldsTheInput fills the journal's file system (a small tmpfs)
// under a Fanout: the Write that cannot be appended holds the pipeline (it
// does not return, so the input is not acknowledged) while Healthy, the
// readiness check of vigil run, reports the full disk; once there is room
// again the Write returns and every alert is delivered once, in order.
// Needs root (mount); skipped otherwise unless CI=true.
func TestDiskFullHoldsTheInput(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount tmpfs (CI runs as root): %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })

	out := &fakeOut{}
	f, err := New(Config{
		Journal: journal.Config{Dir: filepath.Join(dir, "journal"), SegmentSize: 64 << 10, MaxSize: 10 << 20},
		Outputs: []Spec{{Name: "siem", Output: out, Retry: Retry{Initial: time.Millisecond, Max: 5 * time.Millisecond}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.Start(context.Background())
	defer f.Close()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, int64(st.Bavail)*st.Bsize-32<<10), 0o640); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	written := 0
	var held chan error
	for range 500 {
		done := make(chan error, 1)
		go func(from int) { done <- f.Write(ctx, batchOf(from, 20)) }(written)
		for held == nil {
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Write: %v", err)
				}
			default:
				if f.Healthy() != nil {
					held = done
				}
				time.Sleep(time.Millisecond)
				continue
			}
			break
		}
		written += 20
		if held != nil {
			break
		}
	}
	if held == nil {
		t.Fatal("the journal's disk never filled")
	}
	err = f.Healthy()
	if err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Errorf("Healthy with the disk full: %v; want the no space left error", err)
	}
	select {
	case err := <-held:
		t.Fatalf("Write returned %v with the disk full; want it to hold the input until there is room", err)
	case <-time.After(1500 * time.Millisecond): // past a retry
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-held:
		if err != nil {
			t.Fatalf("the held Write, once there is room: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the held Write did not return after room was freed")
	}
	if err := f.Healthy(); err != nil {
		t.Errorf("Healthy after room was freed: %v", err)
	}
	waitFor(t, "every alert delivered", func() bool { return len(out.ids()) >= written })
	if got, want := out.ids(), idsOf(batchOf(0, written)); !slices.Equal(got, want) {
		t.Errorf("delivered %d alerts; want the %d written, once, in order", len(got), len(want))
	}
}
