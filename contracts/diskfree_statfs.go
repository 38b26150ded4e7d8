//go:build linux || darwin

package contracts

import "syscall"

// DiskFree is the space an unprivileged process may still fill on the file
// system of dir, in bytes. The agent checks it before a download and the
// site's despooler before it stores what another site sends.
func DiskFree(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return -1, err
	}
	free := uint64(st.Bavail) * uint64(st.Bsize)
	if free > 1<<62 {
		free = 1 << 62
	}
	return int64(free), nil
}
