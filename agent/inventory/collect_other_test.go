//go:build !linux

package inventory

import (
	"context"
	"errors"
	"runtime"
	"testing"
)

func TestCollectOther(t *testing.T) {
	inv, err := New().Collect(context.Background())
	var partial *PartialError
	if err != nil && !errors.As(err, &partial) {
		t.Fatal(err)
	}
	if inv.OS.Family != runtime.GOOS || inv.Arch != runtime.GOARCH || inv.CPU.Cores < 1 {
		t.Errorf("got os.family %q, arch %q, %d cores; want %q, %q, at least 1",
			inv.OS.Family, inv.Arch, inv.CPU.Cores, runtime.GOOS, runtime.GOARCH)
	}
}
