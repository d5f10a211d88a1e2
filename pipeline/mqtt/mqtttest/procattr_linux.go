package mqtttest

import "syscall"

// procAttr kills the broker if the test binary dies without cleaning up (a
// panic, a timeout), so no orphaned broker keeps running.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
