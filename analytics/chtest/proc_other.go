//go:build !linux

package chtest

import "os/exec"

// dieWithParent has no portable equivalent outside Linux; Stop still ends
// the server when the test finishes normally.
func dieWithParent(*exec.Cmd) {}
