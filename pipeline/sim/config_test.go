package sim_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vigil-iot/vigil/pipeline/sim"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*sim.Config)
		field string // "" when valid
	}{
		{"default", func(*sim.Config) {}, ""},
		{"one device", func(c *sim.Config) { c.Devices, c.Anomalous = 1, 1 }, ""},
		{"all clean", func(c *sim.Config) { c.Anomalous = 0 }, ""},
		{"infinite", func(c *sim.Config) { c.Duration = 0 }, ""},
		{"no lead-in", func(c *sim.Config) { c.LeadIn = 0 }, ""},
		{"fast", func(c *sim.Config) { c.Interval = time.Millisecond }, ""},
		{"zero devices", func(c *sim.Config) { c.Devices, c.Anomalous = 0, 0 }, "Devices"},
		{"too many devices", func(c *sim.Config) { c.Devices = sim.MaxDevices + 1 }, "Devices"},
		{"anomalous > devices", func(c *sim.Config) { c.Anomalous = 13 }, "Anomalous"},
		{"negative anomalous", func(c *sim.Config) { c.Anomalous = -1 }, "Anomalous"},
		{"zero interval", func(c *sim.Config) { c.Interval = 0 }, "Interval"},
		{"negative interval", func(c *sim.Config) { c.Interval = -time.Second }, "Interval"},
		{"slow interval", func(c *sim.Config) { c.Interval = 2 * time.Second }, "Interval"},
		{"sub-millisecond interval", func(c *sim.Config) { c.Interval = 1500 * time.Microsecond }, "Interval"},
		{"short cycle", func(c *sim.Config) { c.Cycle = 30 * time.Second }, "Cycle"},
		{"negative cycle", func(c *sim.Config) { c.Cycle = -time.Minute }, "Cycle"},
		{"negative lead-in", func(c *sim.Config) { c.LeadIn = -time.Second }, "LeadIn"},
		{"negative duration", func(c *sim.Config) { c.Duration = -time.Second }, "Duration"},
		{"zero start", func(c *sim.Config) { c.Start = time.Time{} }, "Start"},
		{"negative probability", func(c *sim.Config) { c.InjectProb = -0.1 }, "InjectProb"},
		{"probability above 1", func(c *sim.Config) { c.InjectProb = 1.5 }, "InjectProb"},
		{"NaN probability", func(c *sim.Config) { c.InjectProb = math.NaN() }, "InjectProb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sim.DefaultConfig()
			tc.edit(&cfg)
			err := cfg.Validate()
			switch {
			case tc.field == "" && err != nil:
				t.Errorf("got %v; want no error", err)
			case tc.field != "" && err == nil:
				t.Errorf("got no error; want one naming %s", tc.field)
			case tc.field != "" && !strings.HasPrefix(err.Error(), "sim: "+tc.field+" "):
				t.Errorf("got %q; want an error naming %s", err, tc.field)
			}
			if _, nerr := sim.New(cfg); (nerr == nil) != (err == nil) {
				t.Errorf("New returned %v; Validate %v", nerr, err)
			}
		})
	}
}

func TestValidateReportsAll(t *testing.T) {
	cfg := sim.Config{Devices: 0, Anomalous: 3}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("got no error for the zero Config")
	}
	for _, field := range []string{"Devices", "Anomalous", "Interval", "Cycle", "Start"} {
		if !strings.Contains(err.Error(), "sim: "+field+" ") {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
}
