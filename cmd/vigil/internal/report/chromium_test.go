//go:build unix

package report

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// chromium returns the path of a Chromium binary. Without one the test is
// skipped, except under CI (CI=true), where it fails: CI installs Chromium.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (CI=true requires it: apt-get install -y chromium)")
	}
	t.Skip("chromium is not installed")
	return ""
}

// headless runs headless Chromium with args and returns its standard output.
// Chromium runs in its own process group, which is killed if ctx ends first.
func headless(ctx context.Context, t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	profile := t.TempDir()
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--no-first-run", "--disable-breakpad", "--hide-scrollbars", "--mute-audio",
		"--user-data-dir=" + profile,
	}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+profile, "XDG_CONFIG_HOME="+profile, "XDG_CACHE_HOME="+profile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, tail(stderr.String(), 2000))
	}
	return stdout.Bytes()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// TestChromiumRendersCharts renders the report of a small replay in headless
// Chromium and checks that the screenshot shows charts, and that the SVG
// elements are in the rendered DOM.
func TestChromiumRendersCharts(t *testing.T) {
	bin := chromium(t)
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()
	start := time.Now()

	in := simReplay(t, replayConfig{devices: 3, anomalous: 2, duration: 20 * time.Minute, shards: 2})
	series := 0
	for _, d := range in.Recording.Devices {
		series += len(d.Signals)
	}
	dir := t.TempDir()
	write := func(name string, in Input) string {
		var buf bytes.Buffer
		if err := Write(&buf, in); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	full := write("report.html", in)

	// The DOM after rendering: every chart is an <svg> with drawn paths.
	dom := headless(ctx, t, bin, "--dump-dom", "file://"+full)
	doc := parse(t, dom)
	if got := count(doc, "svg"); got != series {
		t.Errorf("rendered DOM: got %d <svg> elements; want %d", got, series)
	}
	walk(doc, func(e *html.Node) {
		if e.Data == "svg" && count(e, "path") < 5 {
			t.Errorf("rendered DOM: an <svg> with %d paths", count(e, "path"))
		}
	})

	// The screenshot. Without the evaluation section the first charts are
	// within the first 2000 pixels.
	in.Eval = nil
	page := write("charts.html", in)
	shot := filepath.Join(dir, "shot.png")
	headless(ctx, t, bin, "--screenshot="+shot, "--window-size=1280,2000", "file://"+page)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode the screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 2000 {
		t.Errorf("screenshot is %v; want 1280×2000", b.Size())
	}
	checkScreenshot(t, img)
	t.Logf("rendered and checked in %v", time.Since(start).Round(time.Millisecond))
}

// checkScreenshot asserts that the lower part of the page, where the charts
// are, is drawn: enough non-white pixels, many distinct colours, and the
// charts' own colours (signal line, band, episode spans).
func checkScreenshot(t *testing.T, img image.Image) {
	t.Helper()
	b := img.Bounds()
	area := image.Rect(b.Min.X, b.Min.Y+b.Dy()/2, b.Max.X, b.Max.Y) // the chart area
	var (
		total, ink                int
		colours                   = map[[3]uint8]int{}
		signal, band, warn, label int
	)
	near := func(c color.NRGBA, r, g, bl uint8, tol int) bool {
		d := func(a, b uint8) int { return max(int(a)-int(b), int(b)-int(a)) }
		return d(c.R, r) <= tol && d(c.G, g) <= tol && d(c.B, bl) <= tol
	}
	for y := area.Min.Y; y < area.Max.Y; y++ {
		for x := area.Min.X; x < area.Max.X; x++ {
			c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			total++
			if min(c.R, c.G, c.B) < 230 { // neither white nor the page's grey
				ink++
			}
			colours[[3]uint8{c.R >> 4, c.G >> 4, c.B >> 4}]++
			switch {
			case near(c, colSignal.R, colSignal.G, colSignal.B, 40):
				signal++
			case near(c, 209, 234, 221, 10): // the band over white
				band++
			case near(c, 252, 228, 189, 12): // a warning span over white
				warn++
			case near(c, 0x6a, 0x2c, 0xa8, 60) || near(c, 223, 207, 239, 14): // label hatch
				label++
			}
		}
	}
	distinct := 0
	for _, n := range colours {
		if n >= 20 {
			distinct++
		}
	}
	t.Logf("chart area: %.1f%% ink, %d colours (≥20 px), signal %d px, band %d px, warning %d px, label %d px",
		100*float64(ink)/float64(total), distinct, signal, band, warn, label)
	if frac := float64(ink) / float64(total); frac < 0.15 {
		t.Errorf("chart area is %.1f%% non-white; want at least 15%%", 100*frac)
	}
	if distinct < 40 {
		t.Errorf("chart area has %d distinct colours; want at least 40", distinct)
	}
	for _, c := range []struct {
		name string
		n    int
	}{{"signal line", signal}, {"band", band}, {"warning span", warn}, {"label strip", label}} {
		if c.n < 200 {
			t.Errorf("%s: %d pixels of its colour; want at least 200", c.name, c.n)
		}
	}
}
