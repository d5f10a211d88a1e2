package deploy

import "syscall"

// procAttr kills a server the tests start if the test binary dies without
// cleaning up (a panic, a timeout).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
