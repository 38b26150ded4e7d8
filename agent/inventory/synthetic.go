package inventory

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/stewardhq/steward/contracts"
)

// Synthetic is a Collector of a plausible, made-up Linux machine, the same
// for the same seed: for the fleet simulator and benchmarks, which need
// thousands of different clients on one machine. Addresses come from the
// documentation ranges (192.0.2.0/24, 198.51.100.0/24, 2001:db8::/32).
type Synthetic struct {
	inv contracts.Inventory
}

var (
	synthOS = []contracts.OSInfo{
		{Name: "Debian GNU/Linux", Version: "12", Family: "linux", Kernel: "6.1.0-18-amd64"},
		{Name: "Ubuntu", Version: "24.04", Family: "linux", Kernel: "6.8.0-45-generic"},
		{Name: "Rocky Linux", Version: "9.4", Family: "linux", Kernel: "5.14.0-427.el9.x86_64"},
		{Name: "Alpine Linux", Version: "3.20.3", Family: "linux", Kernel: "6.6.54-0-lts"},
	}
	synthCPUs = []string{"Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", "AMD EPYC 7543 32-Core Processor", "Intel(R) Core(TM) i7-1185G7 @ 3.00GHz"}
	synthPkgs = []string{"bash", "coreutils", "openssl", "openssh-server", "curl", "ca-certificates", "systemd", "python3",
		"nginx", "postgresql", "vim", "git", "tar", "gzip", "sudo", "rsync", "tzdata", "libc6", "zlib1g", "perl",
		"iproute2", "iptables", "chrony", "rsyslog", "logrotate", "cron", "less", "grep", "sed", "gawk"}
)

// NewSynthetic makes the machine of seed.
func NewSynthetic(seed uint64) *Synthetic {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	os := synthOS[r.IntN(len(synthOS))]
	inv := contracts.Inventory{
		OS:     os,
		Arch:   "amd64",
		CPU:    contracts.CPUInfo{Model: synthCPUs[r.IntN(len(synthCPUs))], Cores: 1 << r.IntN(5)},
		Memory: contracts.MemoryInfo{Total: uint64(2+r.IntN(63)) << 30},
		Disks: []contracts.Disk{{Device: "/dev/sda1", Mount: "/", FSType: "ext4",
			Total: uint64(20+r.IntN(480)) << 30, Free: uint64(1+r.IntN(19)) << 30}},
		Networks: []contracts.NetIface{
			{Name: "lo", Addrs: []string{"127.0.0.1/8", "::1/128"}},
			{Name: "eth0", MAC: fmt.Sprintf("52:54:00:%02x:%02x:%02x", r.IntN(256), r.IntN(256), r.IntN(256)),
				Addrs: []string{fmt.Sprintf("192.0.2.%d/24", 1+r.IntN(254)), fmt.Sprintf("2001:db8::%x/64", r.IntN(65535))}},
		},
		Users:  []string{fmt.Sprintf("user%03d", r.IntN(500))},
		Admins: []string{"root", "ops"},
	}
	n := 150 + r.IntN(250)
	for i := range n {
		name := synthPkgs[i%len(synthPkgs)]
		if i >= len(synthPkgs) {
			name = fmt.Sprintf("lib%s%d", synthPkgs[i%len(synthPkgs)], i)
		}
		inv.Software = append(inv.Software, contracts.Software{Name: name, Version: fmt.Sprintf("%d.%d.%d", 1+r.IntN(3), r.IntN(20), r.IntN(30)), Source: "dpkg"})
	}
	return &Synthetic{inv: inv}
}

// Collect implements Collector.
func (s *Synthetic) Collect(context.Context) (contracts.Inventory, error) {
	return contracts.InventoryApply(s.inv, s.inv, contracts.InventorySections()), nil // a deep copy
}
