package bench

import "runtime"

// runtimeSetProfiles turns block and mutex profiling on (every event) or off.
func runtimeSetProfiles(on bool) {
	if on {
		runtime.SetBlockProfileRate(1)
		runtime.SetMutexProfileFraction(1)
		return
	}
	runtime.SetBlockProfileRate(0)
	runtime.SetMutexProfileFraction(0)
}
