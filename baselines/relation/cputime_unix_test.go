//go:build unix

package relation

import (
	"syscall"
	"time"
)

// cpuTime is the user plus system CPU time of the process: on a shared
// machine it says what a benchmark cost, where wall time says how long it
// waited for a core.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
