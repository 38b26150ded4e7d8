package inventory

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/stewardhq/steward/contracts"
)

// hostInterfaces lists the machine's network interfaces with net.Interfaces,
// loopback included (it is named "lo" on Linux), sorted by name; addresses
// are in CIDR notation and sorted. An interface whose addresses cannot be
// read is listed without them and its error returned with the list.
func hostInterfaces() ([]contracts.NetIface, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make([]contracts.NetIface, 0, len(ifaces))
	var errs []error
	for _, ifc := range ifaces {
		n := contracts.NetIface{Name: ifc.Name, MAC: ifc.HardwareAddr.String(), Addrs: []string{}}
		addrs, err := ifc.Addrs()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", ifc.Name, err))
		}
		for _, a := range addrs {
			n.Addrs = append(n.Addrs, a.String()) // *net.IPNet: CIDR
		}
		slices.Sort(n.Addrs)
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b contracts.NetIface) int { return cmp.Compare(a.Name, b.Name) })
	return out, errors.Join(errs...)
}
