//go:build linux

package main

import "syscall"

// childAttributes puts the child in its own process group (so stopping it reaches
// gunicorn's workers too) and has the kernel send it SIGKILL should the thread
// that started it, and so this launcher, die without stopping it.
func childAttributes() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
