package eval

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/vigil-iot/vigil/pipeline"
)

// Options tunes an evaluation. The zero value is usable: no tolerance, kinds
// ignored, the three NAB profiles.
type Options struct {
	// Before and After widen each window for event-level matching: an episode
	// that starts firing in [start−Before, end+After] detects the window (and
	// is a true positive). Point-wise metrics and NAB use the windows as they
	// are.
	Before, After time.Duration
	// MatchKind makes event-level matching require the alert's kind to match
	// the window's, when the window has one: equal, or the window's kind
	// followed by a dot and more ("traffic" matches "traffic.flood").
	MatchKind bool
	// Profiles are the NAB profiles to score; nil means DefaultProfiles.
	Profiles []Profile
}

// episode is one alert episode: the firing and resolved records of one ID.
type episode struct {
	kind     string   // the kind of its first firing record
	refined  []string // other kinds its later firing records reported (a check that joined the alert)
	fired    int64    // time of its first firing record
	resolved int64    // time of its resolved record; math.MaxInt64 when never resolved
	tp       bool
	records  int
}

type episodeKey struct{ device, id string }

// Evaluate scores alerts against labels over the data they came from. It
// evaluates exactly the devices in data: windows of devices not in data are
// ignored and the devices listed in Report.UnknownDevices; alert records of
// devices not in data are counted in Report.IgnoredAlerts. labels may be nil
// (no anomalies: every alert is false). Evaluate does not modify its
// arguments. See the package documentation for the metrics.
func Evaluate(alerts []pipeline.Alert, labels *Labels, data DataInfo, opts Options) *Report {
	if labels == nil {
		labels = NewLabels()
	}
	profiles := opts.Profiles
	if profiles == nil {
		profiles = DefaultProfiles()
	}
	devices := data.Devices()
	r := &Report{
		Options: ReportOptions{
			Before: opts.Before.String(), After: opts.After.String(),
			MatchKind: opts.MatchKind, Profiles: profiles,
		},
		Devices:        len(devices),
		UnknownDevices: labels.UnknownDevices(data.Seen()),
		Kinds:          []KindSummary{},
	}
	if r.UnknownDevices == nil {
		r.UnknownDevices = []string{}
	}

	// Episodes and NAB detections, per device.
	eps := map[episodeKey]*episode{}
	detections := map[string][]int64{}
	for i := range alerts {
		a := &alerts[i]
		if _, ok := data.Times[a.Device]; !ok {
			r.IgnoredAlerts++
			continue
		}
		k := episodeKey{a.Device, a.ID}
		e := eps[k]
		switch a.State {
		case pipeline.Firing:
			if e == nil {
				e = &episode{kind: a.Kind, fired: a.Time, resolved: math.MinInt64}
				eps[k] = e
			} else if a.Time < e.fired {
				if e.kind != "" && e.kind != a.Kind && !slices.Contains(e.refined, e.kind) {
					e.refined = append(e.refined, e.kind)
				}
				e.kind, e.fired = a.Kind, a.Time
			} else if a.Kind != e.kind && !slices.Contains(e.refined, a.Kind) {
				e.refined = append(e.refined, a.Kind)
			}
			e.records++
			detections[a.Device] = append(detections[a.Device], a.Time)
		case pipeline.Resolved:
			if e == nil {
				// Resolved before (in the slice) its firing record: remember it.
				e = &episode{fired: math.MaxInt64, resolved: a.Time}
				eps[k] = e
			} else {
				e.resolved = max(e.resolved, a.Time)
			}
			e.records++
		default:
			r.IgnoredAlerts++
		}
	}
	byDevice := map[string][]*episode{}
	for k, e := range eps {
		if e.fired == math.MaxInt64 {
			r.IgnoredAlerts += e.records // resolved records without a firing one
			continue
		}
		r.Alerts += e.records
		if e.resolved < e.fired {
			e.resolved = math.MaxInt64 // never resolved: firing to the end of data
		}
		byDevice[k.device] = append(byDevice[k.device], e)
	}

	windows := map[string][]Window{}
	for _, w := range labels.Windows() {
		if _, ok := data.Times[w.Device]; ok {
			windows[w.Device] = append(windows[w.Device], w)
		}
	}

	var (
		overall eventAcc
		kinds   = map[string]*eventAcc{}
		hours   float64
		points  pointAcc
		nabAll  nabFile
	)
	kindAcc := func(k string) *eventAcc {
		a := kinds[k]
		if a == nil {
			a = &eventAcc{}
			kinds[k] = a
		}
		return a
	}
	r.PerDevice = make([]DeviceSummary, 0, len(devices))
	for _, dev := range devices {
		times := data.sortedTimes(dev)
		ws := windows[dev]
		es := byDevice[dev]
		slices.SortFunc(es, func(a, b *episode) int {
			return cmp.Or(cmp.Compare(a.fired, b.fired), strings.Compare(a.kind, b.kind))
		})
		var h float64
		if len(times) > 0 {
			h = float64(times[len(times)-1]-times[0]) / float64(time.Hour)
		}
		hours += h
		r.Readings += len(times)

		// Event level.
		var dacc eventAcc
		for _, w := range ws {
			lo, hi := satAdd(w.Start, -int64(opts.Before)), satAdd(w.End, int64(opts.After))
			i, _ := slices.BinarySearchFunc(es, lo, func(e *episode, t int64) int { return cmp.Compare(e.fired, t) })
			first := int64(math.MaxInt64)
			for ; i < len(es) && es[i].fired <= hi; i++ {
				if kindMatches(w.Kind, es[i].kind, opts.MatchKind) || slices.ContainsFunc(es[i].refined, func(k string) bool { return kindMatches(w.Kind, k, opts.MatchKind) }) {
					es[i].tp = true
					first = min(first, es[i].fired)
				}
			}
			detected := first != math.MaxInt64
			var delay float64
			if detected {
				delay = float64(first-w.Start) / float64(time.Second)
			}
			for _, a := range []*eventAcc{&dacc, &overall, kindAcc(w.Kind)} {
				a.addWindow(detected, delay)
			}
		}
		for _, e := range es {
			for _, a := range []*eventAcc{&dacc, &overall, kindAcc(e.kind)} {
				a.addEpisode(e.tp)
			}
		}

		// Point-wise.
		pts := pointwise(times, ws, es)
		points.add(pts)

		// NAB.
		nf := scoreNAB(times, ws, detections[dev])
		nabAll.add(nf)

		r.PerDevice = append(r.PerDevice, DeviceSummary{
			Device:   dev,
			Readings: len(times),
			Summary: Summary{
				Events: dacc.events(h),
				Points: pts.finish(),
				NAB:    nf.result(profiles),
			},
		})
	}
	r.Overall = Summary{Events: overall.events(hours), Points: points.finish(), NAB: nabAll.result(profiles)}
	for k, a := range kinds {
		r.Kinds = append(r.Kinds, KindSummary{Kind: k, Events: a.events(hours)})
	}
	slices.SortFunc(r.Kinds, func(a, b KindSummary) int { return strings.Compare(a.Kind, b.Kind) })
	return r
}

// kindMatches reports whether an alert of kind alert may detect a window of
// kind label.
func kindMatches(label, alert string, match bool) bool {
	if !match || label == "" || label == alert {
		return true
	}
	return len(alert) > len(label) && alert[len(label)] == '.' && strings.HasPrefix(alert, label)
}

// satAdd returns a+b, saturated at the int64 limits.
func satAdd(a, b int64) int64 {
	s := a + b
	switch {
	case b > 0 && s < a:
		return math.MaxInt64
	case b < 0 && s > a:
		return math.MinInt64
	}
	return s
}

// eventAcc accumulates event-level counts.
type eventAcc struct {
	windows, detected int
	episodes, tp      int
	delays            []float64 // seconds
}

func (a *eventAcc) addWindow(detected bool, delay float64) {
	a.windows++
	if detected {
		a.detected++
		a.delays = append(a.delays, delay)
	}
}

func (a *eventAcc) addEpisode(tp bool) {
	a.episodes++
	if tp {
		a.tp++
	}
}

func (a *eventAcc) events(hours float64) Events {
	slices.Sort(a.delays)
	e := Events{
		Windows:        a.windows,
		Detected:       a.detected,
		Missed:         a.windows - a.detected,
		Episodes:       a.episodes,
		TruePositives:  a.tp,
		FalsePositives: a.episodes - a.tp,
		Recall:         ratio(a.detected, a.windows),
		Precision:      ratio(a.tp, a.episodes),
		DelayMedian:    Number(quantile(a.delays, 0.5)),
		DelayP90:       Number(quantile(a.delays, 0.9)),
		Hours:          hours,
	}
	e.F1 = f1(e.Precision, e.Recall)
	e.FalseAlarmsPerHour = Number(math.NaN())
	if hours > 0 {
		e.FalseAlarmsPerHour = Number(float64(e.FalsePositives) / hours)
	}
	return e
}

// quantile returns the p-quantile of sorted values, interpolating linearly
// between the closest ranks (h = (n−1)·p; R's type 7, numpy's default), so the
// median of an even count is the mean of the middle two. NaN when empty.
func quantile(sorted []float64, p float64) float64 {
	n := len(sorted)
	if n == 0 {
		return math.NaN()
	}
	h := p * float64(n-1)
	lo := int(math.Floor(h))
	if lo+1 >= n {
		return sorted[n-1]
	}
	return sorted[lo] + (h-float64(lo))*(sorted[lo+1]-sorted[lo])
}

func ratio(num, den int) Number {
	if den == 0 {
		return Number(math.NaN())
	}
	return Number(float64(num) / float64(den))
}

// f1 returns the harmonic mean of precision and recall. When one of them is
// undefined (no predictions, or no positives) and the other is 0, F1 is 0: for
// point-wise counts this is 2·TP/(2·TP + FP + FN) in every case, undefined only
// when all three are 0.
func f1(p, r Number) Number {
	switch {
	case p.Defined() && r.Defined():
		if p+r == 0 {
			return 0
		}
		return 2 * p * r / (p + r)
	case p == 0 || r == 0:
		return 0
	}
	return Number(math.NaN())
}

// span is a half-open interval [from, to) of event time.
type span struct{ from, to int64 }

// union sorts spans and merges those that overlap or touch.
func union(s []span) []span {
	slices.SortFunc(s, func(a, b span) int { return cmp.Compare(a.from, b.from) })
	out := s[:0]
	for _, x := range s {
		if k := len(out) - 1; k >= 0 && x.from <= out[k].to {
			out[k].to = max(out[k].to, x.to)
			continue
		}
		out = append(out, x)
	}
	return out
}

// countIn returns the number of times in [from, to).
func countIn(times []int64, s span) int {
	i, _ := slices.BinarySearch(times, s.from)
	j, _ := slices.BinarySearch(times, s.to)
	return j - i
}

// pointwise classifies each reading of one device: labelled anomalous when
// inside a window (any kind), predicted anomalous when an episode is firing
// (from its firing record, inclusive, to its resolved record, exclusive). It
// counts over unions of intervals with binary searches, so it costs
// O((windows + episodes)·log readings), not a pass over the readings.
func pointwise(times []int64, ws []Window, es []*episode) pointAcc {
	lab := make([]span, 0, len(ws))
	for _, w := range ws {
		lab = append(lab, span{w.Start, satAdd(w.End, 1)})
	}
	pred := make([]span, 0, len(es))
	for _, e := range es {
		if e.resolved > e.fired {
			pred = append(pred, span{e.fired, e.resolved})
		}
	}
	lab, pred = union(lab), union(pred)
	var a pointAcc
	a.readings = len(times)
	for _, s := range lab {
		a.positives += countIn(times, s)
	}
	for _, s := range pred {
		a.predicted += countIn(times, s)
	}
	for i, j := 0, 0; i < len(lab) && j < len(pred); {
		from, to := max(lab[i].from, pred[j].from), min(lab[i].to, pred[j].to)
		if from < to {
			a.tp += countIn(times, span{from, to})
		}
		if lab[i].to < pred[j].to {
			i++
		} else {
			j++
		}
	}
	return a
}

// pointAcc accumulates point-wise counts.
type pointAcc struct {
	readings, positives, predicted, tp int
}

func (a *pointAcc) add(b pointAcc) {
	a.readings += b.readings
	a.positives += b.positives
	a.predicted += b.predicted
	a.tp += b.tp
}

func (a pointAcc) finish() Points {
	p := Points{
		Readings:       a.readings,
		Positives:      a.positives,
		Negatives:      a.readings - a.positives,
		TruePositives:  a.tp,
		FalsePositives: a.predicted - a.tp,
		FalseNegatives: a.positives - a.tp,
	}
	p.TrueNegatives = p.Negatives - p.FalsePositives
	p.Precision = ratio(p.TruePositives, a.predicted)
	p.Recall = ratio(p.TruePositives, p.Positives)
	p.F1 = f1(p.Precision, p.Recall)
	p.FalseAlarmRate = ratio(p.FalsePositives, p.Negatives)
	p.MissedAlarmRate = ratio(p.FalseNegatives, p.Positives)
	return p
}

func (f *nabFile) add(g nabFile) {
	f.probation += g.probation
	f.windows += g.windows
	f.unscored += g.unscored
	f.detected += g.detected
	f.tpReward += g.tpReward
	f.fps += g.fps
	f.fpCost += g.fpCost
}

func (f nabFile) result(profiles []Profile) NAB {
	n := NAB{
		Windows:        f.windows,
		Unscored:       f.unscored,
		Detected:       f.detected,
		FalsePositives: f.fps,
		Probation:      f.probation,
		Scores:         make([]ProfileScore, len(profiles)),
	}
	for i, p := range profiles {
		s := ProfileScore{
			Profile: p.Name,
			Raw:     f.raw(p),
			Null:    float64(f.windows) * p.FN,
			Perfect: float64(f.windows) * p.TP,
			Score:   Number(math.NaN()),
		}
		if d := s.Perfect - s.Null; d != 0 {
			s.Score = Number(100 * (s.Raw - s.Null) / d)
		}
		n.Scores[i] = s
	}
	return n
}
