package report

import (
	"bytes"
	"cmp"
	"fmt"
	"image/color"
	"math"
	"slices"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/vigil-iot/vigil/detectors/eval"
	"github.com/vigil-iot/vigil/pipeline"
)

// Chart size in points; the page scales charts to its width.
const (
	chartWidth  = 800 * vg.Length(1)
	chartHeight = 220 * vg.Length(1)
)

// Colours of the charts, also used by the page's legend (see css).
var (
	colSignal   = color.NRGBA{R: 0x1f, G: 0x4e, B: 0x9c, A: 0xff}
	colBand     = color.NRGBA{R: 0x2e, G: 0xa0, B: 0x64, A: 0x38}
	colMean     = color.NRGBA{R: 0x1e, G: 0x7a, B: 0x4a, A: 0xff}
	colWarning  = color.NRGBA{R: 0xf5, G: 0xa6, B: 0x23, A: 0x4c}
	colWarnEdge = color.NRGBA{R: 0xd9, G: 0x8a, B: 0x00, A: 0xff}
	colCritical = color.NRGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0x40}
	colCritEdge = color.NRGBA{R: 0xb0, G: 0x1e, B: 0x1e, A: 0xff}
	colLabel    = color.NRGBA{R: 0x80, G: 0x40, B: 0xc0, A: 0x40}
	colLabEdge  = color.NRGBA{R: 0x6a, G: 0x2c, B: 0xa8, A: 0xff}
	colGrid     = color.NRGBA{R: 0xe3, G: 0xe6, B: 0xeb, A: 0xff}
	colText     = color.NRGBA{R: 0x33, G: 0x3a, B: 0x45, A: 0xff}
)

var sans = font.Font{Typeface: "Liberation", Variant: "Sans"}

// episode is one alert episode: the records of one alert ID.
type episode struct {
	id, device, signal, kind, detector, message string
	severity                                    pipeline.Severity
	fired, resolved                             int64 // resolved is meaningful only when !open
	open                                        bool
	peak                                        float64 // the highest score of its firing records
}

// episodesByDevice groups alert records into episodes, per device, sorted by
// firing time. An episode starts at its earliest firing record and ends at
// its latest resolved record; resolved records without a firing record are
// dropped.
func episodesByDevice(alerts []pipeline.Alert) map[string][]*episode {
	type key struct{ device, id string }
	byID := map[key]*episode{}
	var order []*episode
	for i := range alerts {
		a := &alerts[i]
		k := key{a.Device, a.ID}
		e := byID[k]
		if e == nil {
			e = &episode{id: a.ID, device: a.Device, signal: a.Signal, fired: math.MaxInt64, resolved: math.MinInt64}
			byID[k] = e
			order = append(order, e)
		}
		switch a.State {
		case pipeline.Firing:
			if a.Time < e.fired {
				e.fired, e.kind, e.detector, e.message = a.Time, a.Kind, a.Detector, a.Message
			}
			e.severity = max(e.severity, a.Severity)
			if !math.IsNaN(a.Score) {
				e.peak = max(e.peak, a.Score)
			}
		case pipeline.Resolved:
			e.resolved = max(e.resolved, a.Time)
		}
	}
	out := map[string][]*episode{}
	for _, e := range order {
		if e.fired == math.MaxInt64 {
			continue
		}
		e.open = e.resolved < e.fired
		out[e.device] = append(out[e.device], e)
	}
	for _, es := range out {
		slices.SortStableFunc(es, func(a, b *episode) int { return cmp.Compare(a.fired, b.fired) })
	}
	return out
}

// chart is one signal's chart.
type chart struct {
	s        *Series
	unit     string
	z        float64
	episodes []*episode    // of the device, on this signal or device-wide
	windows  []eval.Window // label windows of the device
	from, to int64         // the time axis: the device's first and last reading
}

func sec(ns int64) float64 { return float64(ns) / 1e9 }

// runs splits the non-empty buckets into runs separated by gaps: a gap is a
// step between non-empty buckets of more than four times the usual (median)
// step, and at least four buckets, so sparse series stay connected while an
// outage breaks the line.
func runs(bs []Bucket) [][2]int {
	var idx []int
	for i := range bs {
		if bs[i].N > 0 {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil
	}
	steps := make([]int, 0, len(idx))
	for i := 1; i < len(idx); i++ {
		steps = append(steps, idx[i]-idx[i-1])
	}
	limit := 4
	if len(steps) > 0 {
		s := slices.Clone(steps)
		slices.Sort(s)
		limit = max(limit, 4*s[len(s)/2])
	}
	var out [][2]int
	from := idx[0]
	for i, st := range steps {
		if st > limit {
			out = append(out, [2]int{from, idx[i] + 1})
			from = idx[i+1]
		}
	}
	return append(out, [2]int{from, idx[len(idx)-1] + 1})
}

// plot builds the chart's plot.
func (c *chart) plot() (*plot.Plot, error) {
	s := c.s
	p := plot.New()
	p.BackgroundColor = color.White
	setFonts(p)
	p.X.Label.Text = "time (UTC)"
	p.Y.Label.Text = s.Signal
	if c.unit != "" {
		p.Y.Label.Text += " (" + c.unit + ")"
	}
	p.X.Tick.Marker = clockTicks{}
	p.X.Padding, p.Y.Padding = 0, 0

	from, to := c.from, c.to
	if from == 0 && to == 0 {
		from, to = s.From, s.To
	}
	xlo, xhi := sec(from), sec(to)
	if xhi-xlo < 1e-3 {
		xlo, xhi = xlo-1, xhi+1
	}
	clampX := func(ns int64) float64 { return min(max(sec(ns), xlo), xhi) }

	// Value range: the data, and the band as far as it stays within one data
	// range of it (a wide band must not flatten the signal).
	dlo, dhi := math.Inf(1), math.Inf(-1)
	blo, bhi := math.Inf(1), math.Inf(-1)
	for i := range s.Buckets {
		b := &s.Buckets[i]
		if b.N == 0 {
			continue
		}
		dlo, dhi = min(dlo, b.Min), max(dhi, b.Max)
		if b.Band.Warm {
			lo, hi := c.bandAt(b)
			blo, bhi = min(blo, lo, b.Band.Mean), max(bhi, hi, b.Band.Mean)
		}
	}
	if math.IsInf(dlo, 0) {
		dlo, dhi = 0, 1
	}
	span := dhi - dlo
	if span == 0 {
		span = max(math.Abs(dlo)*0.1, 1)
	}
	ylo, yhi := dlo, dhi
	if !math.IsInf(blo, 0) {
		ylo = max(min(ylo, blo), dlo-span)
		yhi = min(max(yhi, bhi), dhi+span)
	}
	pad := 0.06 * (yhi - ylo)
	if pad == 0 {
		pad = span / 2
	}
	// Room at the bottom for the label strip, at the top for episode names.
	ylo -= 1.6 * pad
	yhi += 1.6 * pad

	grid := plotter.NewGrid()
	grid.Vertical.Color, grid.Horizontal.Color = colGrid, colGrid
	grid.Vertical.Width, grid.Horizontal.Width = 0.5, 0.5
	p.Add(grid)

	// Alert episodes and label windows, behind the data.
	spans := &spanLayer{}
	for _, e := range c.episodes {
		end := to
		if !e.open {
			end = e.resolved
		}
		if end < from || e.fired > to {
			continue
		}
		fill, edge := colWarning, colWarnEdge
		if e.severity == pipeline.Critical {
			fill, edge = colCritical, colCritEdge
		}
		spans.items = append(spans.items, spanItem{from: clampX(e.fired), to: clampX(end), fill: fill, edge: edge, label: e.detector})
	}
	for _, w := range c.windows {
		if w.End < from || w.Start > to {
			continue
		}
		spans.items = append(spans.items, spanItem{from: clampX(w.Start), to: clampX(w.End), fill: colLabel, edge: colLabEdge, strip: true})
	}
	p.Add(spans)

	rs := runs(s.Buckets)
	mean := draw.LineStyle{Color: colMean, Width: 0.8, Dashes: []vg.Length{3, 2}}
	for _, r := range rs {
		var up, down, mid plotter.XYs
		for i := r[0]; i < r[1]; i++ {
			b := &s.Buckets[i]
			if b.N == 0 || !b.Band.Warm {
				continue
			}
			x := clampX(s.BucketTime(i))
			lo, hi := c.bandAt(b)
			up = append(up, plotter.XY{X: x, Y: hi})
			down = append(down, plotter.XY{X: x, Y: lo})
			mid = append(mid, plotter.XY{X: x, Y: b.Band.Mean})
		}
		if len(up) < 2 {
			continue
		}
		// Bands move slowly: points on a straight line add bytes, not detail.
		tol := (yhi - ylo) / 2000
		up, down, mid = simplify(up, tol), simplify(down, tol), simplify(mid, tol)
		slices.Reverse(down)
		poly, err := plotter.NewPolygon(append(up, down...))
		if err != nil {
			return nil, fmt.Errorf("report: band of %s: %w", s.Signal, err)
		}
		poly.Color = colBand
		poly.LineStyle.Width = 0
		l, err := plotter.NewLine(mid)
		if err != nil {
			return nil, fmt.Errorf("report: mean of %s: %w", s.Signal, err)
		}
		l.LineStyle = mean
		p.Add(poly, l)
	}

	line := draw.LineStyle{Color: colSignal, Width: 0.9}
	points := 0
	for _, r := range rs {
		var xys plotter.XYs
		for i := r[0]; i < r[1]; i++ {
			b := &s.Buckets[i]
			if b.N == 0 {
				continue
			}
			points++
			x := clampX(s.BucketTime(i))
			xys = appendDistinct(xys, x, b.First)
			if b.Last >= b.First {
				xys = appendDistinct(xys, x, b.Min)
				xys = appendDistinct(xys, x, b.Max)
			} else {
				xys = appendDistinct(xys, x, b.Max)
				xys = appendDistinct(xys, x, b.Min)
			}
			xys = appendDistinct(xys, x, b.Last)
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, fmt.Errorf("report: signal %s: %w", s.Signal, err)
		}
		l.LineStyle = line
		p.Add(l)
	}
	if points <= 80 {
		// Few samples: mark them, or a lone sample would not show.
		var xys plotter.XYs
		for i := range s.Buckets {
			if b := &s.Buckets[i]; b.N > 0 {
				xys = append(xys, plotter.XY{X: clampX(s.BucketTime(i)), Y: b.Last})
			}
		}
		if len(xys) > 0 {
			sc, err := plotter.NewScatter(xys)
			if err != nil {
				return nil, fmt.Errorf("report: signal %s: %w", s.Signal, err)
			}
			sc.GlyphStyle = draw.GlyphStyle{Color: colSignal, Radius: 1.6, Shape: draw.CircleGlyph{}}
			p.Add(sc)
		}
	}
	p.Add(&spanLabels{layer: spans})

	p.X.Min, p.X.Max = xlo, xhi
	p.Y.Min, p.Y.Max = ylo, yhi
	return p, nil
}

// dataLeft returns where a plot's data area starts, from the left edge of a
// chart: it depends on the width of the value axis' labels.
func dataLeft(p *plot.Plot) vg.Length {
	full := draw.Canvas{Rectangle: vg.Rectangle{Max: vg.Point{X: chartWidth, Y: chartHeight}}}
	return p.DataCanvas(full).Min.X
}

// renderSVG draws a plot with its data area starting at left (at least
// where it would start by itself, so charts drawn with one left align), and
// returns it as an SVG element without the XML prolog, ready to embed in
// HTML.
func renderSVG(p *plot.Plot, left vg.Length) ([]byte, error) {
	cv := vgsvg.New(chartWidth, chartHeight)
	dc := draw.New(cv)
	if shift := left - dataLeft(p); shift > 0 {
		dc = draw.Crop(dc, shift, 0, 0, 0)
	}
	p.Draw(dc)
	var buf bytes.Buffer
	if _, err := cv.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("report: render chart: %w", err)
	}
	out := buf.Bytes()
	if i := bytes.Index(out, []byte("<svg")); i >= 0 {
		out = out[i:]
	}
	return out, nil
}

// bandAt returns the band of a bucket: median ± z·spread.
func (c *chart) bandAt(b *Bucket) (lo, hi float64) {
	return b.Band.Median - c.z*b.Band.Spread, b.Band.Median + c.z*b.Band.Spread
}

// simplify drops the points that lie within tol (in y) of the straight line
// from the last point kept to the next point. The first and last points stay.
func simplify(xys plotter.XYs, tol float64) plotter.XYs {
	if len(xys) < 3 {
		return xys
	}
	out := xys[:1]
	for i := 1; i < len(xys)-1; i++ {
		a, b, c := out[len(out)-1], xys[i], xys[i+1]
		y := a.Y
		if c.X != a.X {
			y += (c.Y - a.Y) * (b.X - a.X) / (c.X - a.X)
		}
		if math.Abs(b.Y-y) > tol {
			out = append(out, b)
		}
	}
	return append(out, xys[len(xys)-1])
}

// appendDistinct appends (x, y) unless it repeats the last point.
func appendDistinct(xys plotter.XYs, x, y float64) plotter.XYs {
	if n := len(xys); n > 0 && xys[n-1].X == x && xys[n-1].Y == y {
		return xys
	}
	return append(xys, plotter.XY{X: x, Y: y})
}

func setFonts(p *plot.Plot) {
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = font.From(sans, 9)
		a.Label.TextStyle.Color = colText
		a.Tick.Label.Font = font.From(sans, 8)
		a.Tick.Label.Color = colText
		a.Color = colText
		a.Tick.Color = colText
	}
	p.Title.TextStyle.Font = font.From(sans, 10)
	p.Legend.TextStyle.Font = font.From(sans, 8)
}

// spanItem is a vertical span of time: an alert episode over the full height,
// or a label window as a hatched strip along the bottom.
type spanItem struct {
	from, to   float64 // seconds
	fill, edge color.Color
	label      string
	strip      bool
	x0         vg.Length // where Plot drew it, for the label
	placed     bool
}

// spanLayer draws spans. It is a plot.Plotter.
type spanLayer struct {
	items []spanItem
}

const (
	minSpanWidth = vg.Length(1.5)
	stripHeight  = vg.Length(7)
)

func (l *spanLayer) Plot(c draw.Canvas, plt *plot.Plot) {
	trX, _ := plt.Transforms(&c)
	edge := draw.LineStyle{Width: 0.6}
	for i := range l.items {
		it := &l.items[i]
		x0, x1 := max(trX(it.from), c.Min.X), min(trX(it.to), c.Max.X)
		if x1-x0 < minSpanWidth {
			if x0+minSpanWidth <= c.Max.X {
				x1 = x0 + minSpanWidth
			} else {
				x0 = x1 - minSpanWidth
			}
		}
		it.x0, it.placed = x0, true
		y0, y1 := c.Min.Y, c.Max.Y
		edge.Color = it.edge
		if it.strip {
			y1 = y0 + stripHeight
			dashed := draw.LineStyle{Color: it.edge, Width: 0.5, Dashes: []vg.Length{2, 2}}
			c.StrokeLine2(dashed, x0, y1, x0, c.Max.Y)
			c.StrokeLine2(dashed, x1, y1, x1, c.Max.Y)
		}
		c.FillPolygon(it.fill, []vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}})
		if it.strip {
			hatch(c, draw.LineStyle{Color: it.edge, Width: 0.5}, x0, y0, x1, y1)
			continue
		}
		c.StrokeLine2(edge, x0, y0, x0, y1)
	}
}

// hatch fills a rectangle with diagonal lines.
func hatch(c draw.Canvas, sty draw.LineStyle, x0, y0, x1, y1 vg.Length) {
	const gap = 3.5
	h := y1 - y0
	for a := x0 - h; a < x1; a += gap {
		sx, sy := a, y0
		ex, ey := a+h, y1
		if sx < x0 {
			sy += x0 - sx
			sx = x0
		}
		if ex > x1 {
			ey -= ex - x1
			ex = x1
		}
		if ex > sx {
			c.StrokeLine2(sty, sx, sy, ex, ey)
		}
	}
}

// spanLabels writes the detector names of a spanLayer's episodes at the top,
// skipping those that would overlap the previous name. It draws after the
// data so the names stay readable.
type spanLabels struct{ layer *spanLayer }

func (l *spanLabels) Plot(c draw.Canvas, plt *plot.Plot) {
	sty := text.Style{
		Color:   colText,
		Font:    font.From(sans, 7),
		XAlign:  draw.XLeft,
		YAlign:  draw.YTop,
		Handler: plt.TextHandler,
	}
	next := c.Min.X
	for _, it := range l.layer.items {
		if it.label == "" || !it.placed || it.x0 < next {
			continue
		}
		w := sty.Width(it.label)
		if it.x0+w > c.Max.X {
			continue
		}
		c.FillText(sty, vg.Point{X: it.x0 + 1.5, Y: c.Max.Y - 1.5}, it.label)
		next = it.x0 + w + 6
	}
}

// clockTicks puts ticks on round UTC clock times. The axis is in Unix
// seconds.
type clockTicks struct{}

// tickSteps are the steps between labelled ticks, with their minor steps.
var tickSteps = []struct{ major, minor time.Duration }{
	{time.Millisecond, 200 * time.Microsecond},
	{2 * time.Millisecond, 500 * time.Microsecond},
	{5 * time.Millisecond, time.Millisecond},
	{10 * time.Millisecond, 2 * time.Millisecond},
	{20 * time.Millisecond, 5 * time.Millisecond},
	{50 * time.Millisecond, 10 * time.Millisecond},
	{100 * time.Millisecond, 20 * time.Millisecond},
	{200 * time.Millisecond, 50 * time.Millisecond},
	{500 * time.Millisecond, 100 * time.Millisecond},
	{time.Second, 200 * time.Millisecond},
	{2 * time.Second, 500 * time.Millisecond},
	{5 * time.Second, time.Second},
	{10 * time.Second, 2 * time.Second},
	{15 * time.Second, 5 * time.Second},
	{30 * time.Second, 10 * time.Second},
	{time.Minute, 10 * time.Second},
	{2 * time.Minute, 30 * time.Second},
	{5 * time.Minute, time.Minute},
	{10 * time.Minute, 2 * time.Minute},
	{15 * time.Minute, 5 * time.Minute},
	{30 * time.Minute, 10 * time.Minute},
	{time.Hour, 10 * time.Minute},
	{2 * time.Hour, 30 * time.Minute},
	{3 * time.Hour, time.Hour},
	{6 * time.Hour, time.Hour},
	{12 * time.Hour, 3 * time.Hour},
	{24 * time.Hour, 6 * time.Hour},
	{2 * 24 * time.Hour, 12 * time.Hour},
	{7 * 24 * time.Hour, 24 * time.Hour},
	{14 * 24 * time.Hour, 2 * 24 * time.Hour},
	{28 * 24 * time.Hour, 7 * 24 * time.Hour},
}

// maxTicks is the most labelled ticks on the time axis.
const maxTicks = 8

func (clockTicks) Ticks(lo, hi float64) []plot.Tick {
	span := time.Duration((hi - lo) * 1e9)
	last := tickSteps[len(tickSteps)-1]
	step, minor := last.major, last.minor
	for _, st := range tickSteps {
		if span/st.major <= maxTicks {
			step, minor = st.major, st.minor
			break
		}
	}
	for span/step > maxTicks {
		step, minor = 2*step, 2*minor
	}
	layout := "15:04"
	switch {
	case step < time.Second:
		layout = "15:04:05.000"
	case step < time.Minute:
		layout = "15:04:05"
	case step >= 24*time.Hour:
		layout = "Jan 2"
	}
	// Unix seconds in a float64 resolve about 0.2 µs: round to microseconds.
	loNs, hiNs := int64(math.Round(lo*1e6))*1e3, int64(math.Round(hi*1e6))*1e3
	var ticks []plot.Tick
	first := ceilTo(loNs, int64(minor))
	lastDay := int64(math.MinInt64)
	for t := first; t <= hiNs; t += int64(minor) {
		if t%int64(step) != 0 {
			ticks = append(ticks, plot.Tick{Value: sec(t)})
			continue
		}
		tm := time.Unix(0, t).UTC()
		label := tm.Format(layout)
		if day := t / int64(24*time.Hour); step < 24*time.Hour && day != lastDay {
			label += "\n" + tm.Format("Jan 2")
			lastDay = day
		}
		ticks = append(ticks, plot.Tick{Value: sec(t), Label: label})
	}
	return ticks
}

// ceilTo rounds t up to a multiple of m.
func ceilTo(t, m int64) int64 {
	r := t % m
	switch {
	case r == 0:
		return t
	case r < 0:
		return t - r
	}
	return t - r + m
}
