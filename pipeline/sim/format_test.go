package sim

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

func TestAppendCenti(t *testing.T) {
	for _, tc := range []struct {
		x    float64
		want string
	}{
		{0, "0"},
		{4.21, "4.21"},
		{61.3, "61.3"},
		{61.299, "61.3"},
		{2.7, "2.7"},
		{2.704, "2.7"},
		{2.705, "2.71"}, // 270.5 rounds away from zero
		{3, "3"},
		{0.05, "0.05"},
		{0.004, "0"},
		{-0.004, "0"},
		{-1.5, "-1.5"},
		{-0.01, "-0.01"},
		{123456.789, "123456.79"},
	} {
		if got := string(appendCenti(nil, tc.x)); got != tc.want {
			t.Errorf("appendCenti(%v) = %q; want %q", tc.x, got, tc.want)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		x := r.Float64() * 200
		want := strconv.FormatFloat(math.Round(x*100)/100, 'f', -1, 64)
		if got := string(appendCenti(nil, x)); got != want {
			t.Fatalf("appendCenti(%v) = %q; strconv says %q", x, got, want)
		}
	}
}

func TestLineName(t *testing.T) {
	for n, want := range map[int]string{0: "line-a", 1: "line-b", 25: "line-z", 26: "line-aa", 27: "line-ab", 51: "line-az", 52: "line-ba", 701: "line-zz", 702: "line-aaa"} {
		if got := lineName(n); got != want {
			t.Errorf("lineName(%d) = %q; want %q", n, got, want)
		}
	}
}

func TestClippedNorm(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	n := 10_000_000 // enough to see |x| > 5 about six times without the clip
	if testing.Short() {
		n = 1_000_000
	}
	var sum, sum2 float64
	for range n {
		x := clippedNorm(r)
		if math.Abs(x) > noiseClip {
			t.Fatalf("clippedNorm returned %v; want |x| ≤ %v", x, noiseClip)
		}
		sum += x
		sum2 += x * x
	}
	mean := sum / float64(n)
	if std := math.Sqrt(sum2/float64(n) - mean*mean); math.Abs(mean) > 0.005 || math.Abs(std-1) > 0.005 {
		t.Errorf("clippedNorm: mean %.4f, std %.4f; want 0, 1", mean, std)
	}
}
