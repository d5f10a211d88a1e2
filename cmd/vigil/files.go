package main

import "os"

// createFile creates or truncates path for writing only. Unlike os.Create it
// does not open for reading too: opened read-write, a FIFO or a pipe named as
// /dev/stdout keeps its own read end, so a reader that went away (`| head`)
// is never noticed and writes block forever once the pipe is full.
func createFile(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
}
