//go:build !unix

package site

// lockDataDir does not lock on this system: run one site process per data
// dir.
func lockDataDir(string) (func(), error) { return func() {}, nil }
