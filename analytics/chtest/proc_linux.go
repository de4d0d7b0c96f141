package chtest

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the server die with the test binary, so a test killed
// by its timeout leaves no clickhouse-server behind.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
