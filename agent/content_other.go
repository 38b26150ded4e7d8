//go:build !unix

package agent

import "os"

// oNoFollow is 0 where open has no O_NOFOLLOW; os.Root still keeps every
// name inside the staging directory, which holds no links while files are
// written.
const oNoFollow = 0

// syncDirHandle does nothing where directories cannot be synced.
func syncDirHandle(*os.File) error { return nil }
