package contracts

import (
	"fmt"
	"strings"
	"testing"
)

// changeLines renders changes one per line, "section change item from -> to".
func changeLines(c []InventoryChange) string {
	var b strings.Builder
	for _, x := range c {
		fmt.Fprintf(&b, "%s %s %s %q -> %q\n", x.Section, x.Change, x.Item, x.From, x.To)
	}
	return b.String()
}

func TestInventoryChanges(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Inventory)
		want   string
	}{
		{"none, free space ignored", func(inv *Inventory) {
			inv.Disks[0].Free = 0
		}, ""},
		{"software added, removed, upgraded", func(inv *Inventory) {
			inv.Software = []Software{
				{Name: "bash", Version: "5.2.15-2+b2", Source: "dpkg"},
				{Name: "openssl", Version: "3.0.13-1", Source: "dpkg"},
				{Name: "vim", Version: "2:9.0.1378-2", Source: "dpkg"},
			}
		}, `software removed curl "7.88.1-10" -> ""
software changed openssl "3.0.11-1" -> "3.0.13-1"
software added vim "" -> "2:9.0.1378-2"
`},
		{"several versions of a package", func(inv *Inventory) {
			inv.Software = append(inv.Software,
				Software{Name: "curl", Version: "8.0", Source: "dpkg"},
				Software{Name: "openssl", Version: "3.1", Source: "dpkg"},
				Software{Name: "openssl", Version: "3.2", Source: "dpkg"},
			)
			inv.Software[2].Version = "3.0.13-1"
		}, `software added curl "" -> "8.0"
software removed openssl "3.0.11-1" -> ""
software added openssl "" -> "3.0.13-1"
software added openssl "" -> "3.1"
software added openssl "" -> "3.2"
`},
		{"every section", func(inv *Inventory) {
			inv.OS.Version = "13"
			inv.OS.Kernel = "6.12.0-1-amd64"
			inv.CPU.Cores = 8
			inv.Memory.Total = 16 << 30
			inv.Disks[1].Total = 2_000
			inv.Disks = append(inv.Disks, Disk{Device: "/dev/sdb1", Mount: "/data", FSType: "xfs", Total: 5_000})
			inv.Networks = inv.Networks[1:]
			inv.Networks[0].Addrs = []string{"::1/128", "127.0.0.1/8"} // same set
			inv.Users = []string{"bob"}
			inv.Admins = append(inv.Admins, "bob")
			inv.Labels = map[string]string{"env": "test", "site": "paris"}
		}, `os changed os.version "12" -> "13"
os changed os.kernel "6.1.0-18-amd64" -> "6.12.0-1-amd64"
cpu changed cpu.cores "4" -> "8"
memory changed memory.total "8589934592" -> "17179869184"
disks changed /boot "/dev/sda2 ext4 1000" -> "/dev/sda2 ext4 2000"
disks added /data "" -> "/dev/sdb1 xfs 5000"
networks removed eth0 "52:54:00:12:34:56 192.168.1.10/24" -> ""
users removed alice "" -> ""
users added bob "" -> ""
admins added bob "" -> ""
labels changed env "prod" -> "test"
labels added site "" -> "paris"
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cur := baseInventory()
			tt.change(&cur)
			if got := changeLines(InventoryChanges(baseInventory(), cur)); got != tt.want {
				t.Errorf("got\n%swant\n%s", got, tt.want)
			}
		})
	}
}
