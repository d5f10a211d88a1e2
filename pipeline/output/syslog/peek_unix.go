//go:build unix

package syslog

import (
	"errors"
	"syscall"
)

// peek reports, without waiting and without consuming anything, whether
// the socket has something to read: data or the peer's FIN. A reset
// connection is an error.
func peek(sc syscall.Conn) (readable bool, err error) {
	rc, err := sc.SyscallConn()
	if err != nil {
		return false, err
	}
	var (
		b    [1]byte
		rerr error
	)
	err = rc.Read(func(fd uintptr) bool {
		// Go's sockets are non-blocking: EAGAIN when nothing is there.
		_, _, rerr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK)
		return true
	})
	switch {
	case err != nil:
		return false, err
	case errors.Is(rerr, syscall.EAGAIN), errors.Is(rerr, syscall.EWOULDBLOCK), errors.Is(rerr, syscall.EINTR):
		return false, nil
	case rerr != nil:
		return false, rerr
	}
	return true, nil // 0 octets peeked is the FIN, 1 is data
}
