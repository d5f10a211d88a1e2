//go:build !unix

package syslog

import "syscall"

// peek cannot look into the socket on this platform: it reports the
// stream readable, so that peerGone reads it with a short deadline.
func peek(syscall.Conn) (readable bool, err error) { return true, nil }
