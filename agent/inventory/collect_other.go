//go:build !linux

package inventory

import (
	"context"
	"runtime"

	"github.com/stewardhq/steward/contracts"
)

// Other is the collector of the systems without a collector of their own
// yet: it reports what the Go runtime knows (OS family, architecture,
// logical processors) and the network interfaces, so the agent builds and
// reports everywhere. Windows and macOS collectors replace it behind the
// same interface.
type Other struct{}

// New returns the collector of this platform.
func New() Collector { return Other{} }

// Collect returns the minimal inventory; see Collector for its errors.
func (Other) Collect(ctx context.Context) (contracts.Inventory, error) {
	inv := contracts.Inventory{
		OS:   contracts.OSInfo{Family: runtime.GOOS},
		Arch: runtime.GOARCH,
		CPU:  contracts.CPUInfo{Cores: runtime.NumCPU()},
	}
	var r result
	r.section(contracts.InventorySectionCPU, nil, true) // from the runtime: never fails
	var err error
	inv.Networks, err = hostInterfaces()
	r.section(contracts.InventorySectionNetworks, err, len(inv.Networks) > 0)
	return inv, r.err(ctx)
}
