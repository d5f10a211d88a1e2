package tune_test

import (
	"fmt"
	"os"

	"github.com/vigil-iot/vigil/cmd/vigil/internal/tune"
	"github.com/vigil-iot/vigil/detectors"
)

func ExampleParseSpec() {
	spec, err := tune.ParseSpec([]byte(`
objective: recall_at_fa
fa_budget: 0.5
search: random
trials: 60
parameters:
  overpressure.spike.z: {min: 4, max: 9}
  overpressure.spike.hold: [1, 2, 3]
  baseline.half_life: {min: 300, max: 3000, log: true}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s (%s), budget %v, %d random trials\n", spec.Objective, spec.Objective.Describe(), spec.FABudget, spec.Trials)
	for _, p := range spec.Params {
		if p.Values != nil {
			fmt.Printf("  %s: %d values\n", p.Path, len(p.Values))
		} else {
			fmt.Printf("  %s: %v..%v, log %t\n", p.Path, p.Min, p.Max, p.Log)
		}
	}

	_, err = tune.ParseSpec([]byte(`parameters: {overpressure.spike.zz: {min: 9, max: 4}}`))
	fmt.Println(err)
	// Output:
	// recall_at_fa (event recall within a false-alarm budget), budget 0.5, 60 random trials
	//   overpressure.spike.z: 4..9, log false
	//   overpressure.spike.hold: 3 values
	//   baseline.half_life: 300..3000, log true
	// tune: spec: parameters.overpressure.spike.zz: unknown key "zz" in overpressure.spike (keys: z, warmup_z, hold, clear, keep_firing_for, off)
}

func ExampleWriteConfig() {
	p := detectors.DefaultParams()
	p.Overpressure.Spike.Z = 4.5
	p.Overpressure.Spike.Hold = 3
	p.Baseline.HalfLife = 2000
	if err := tune.WriteConfig(os.Stdout, nil, &tune.Trial{Params: p}); err != nil {
		fmt.Println(err)
	}
	// Output:
	// # Vigil detection settings found by "vigil tune". Only keys whose values differ from
	// # Vigil's defaults are written; merge the detectors section into your configuration.
	//
	// detectors:
	//   baseline: {half_life: 2000}
	//   overpressure:
	//     spike: {z: 4.5, hold: 3}
}
