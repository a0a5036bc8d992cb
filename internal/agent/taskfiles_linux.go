package agent

import (
	"os"
	"syscall"
)

// tmpfsMagic is the statfs type of a tmpfs.
const tmpfsMagic = 0x01021994

// mountTmpfs makes dir a tmpfs (readable by root only, no devices, no
// executables) unless it is one already: task files live in memory only.
func mountTmpfs(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err == nil && st.Type == tmpfsMagic {
		return nil
	}
	return syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "mode=0700")
}
