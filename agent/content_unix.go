//go:build unix

package agent

import (
	"os"
	"syscall"
)

// oNoFollow makes opening a name that is a symbolic link fail.
const oNoFollow = syscall.O_NOFOLLOW

// syncDirHandle syncs an open directory, so that the names in it are on
// disk.
func syncDirHandle(d *os.File) error { return d.Sync() }
