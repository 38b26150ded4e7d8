package contracts

import (
	"reflect"
	"slices"
	"testing"
)

// base is the inventory the Diff and Changes tests start from.
func baseInventory() Inventory {
	return Inventory{
		OS:     OSInfo{Name: "Debian GNU/Linux", Version: "12", Family: "linux", Kernel: "6.1.0-18-amd64"},
		Arch:   "amd64",
		CPU:    CPUInfo{Model: "Intel(R) Xeon(R)", Cores: 4},
		Memory: MemoryInfo{Total: 8 << 30},
		Disks: []Disk{
			{Device: "/dev/sda1", Mount: "/", FSType: "ext4", Total: 100_000, Free: 50_000},
			{Device: "/dev/sda2", Mount: "/boot", FSType: "ext4", Total: 1_000, Free: 500},
		},
		Networks: []NetIface{
			{Name: "eth0", MAC: "52:54:00:12:34:56", Addrs: []string{"192.168.1.10/24"}},
			{Name: "lo", Addrs: []string{"127.0.0.1/8", "::1/128"}},
		},
		Software: []Software{
			{Name: "bash", Version: "5.2.15-2+b2", Source: "dpkg"},
			{Name: "curl", Version: "7.88.1-10", Source: "dpkg"},
			{Name: "openssl", Version: "3.0.11-1", Source: "dpkg"},
		},
		Users:  []string{"alice"},
		Admins: []string{"alice", "root"},
		Labels: map[string]string{"env": "prod"},
	}
}

func TestInventoryDiff(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Inventory)
		want   []string
		exact  bool // Apply rebuilds cur exactly (no free-space noise)
	}{
		{"identical", func(*Inventory) {}, nil, true},
		{"lists in another order", func(inv *Inventory) {
			slices.Reverse(inv.Disks)
			slices.Reverse(inv.Networks)
			slices.Reverse(inv.Networks[1].Addrs)
			slices.Reverse(inv.Software)
			slices.Reverse(inv.Admins)
		}, nil, false},
		{"nil and empty lists are equal", func(inv *Inventory) {
			inv.Users = []string{}
			inv.Labels = map[string]string{}
		}, []string{"users", "labels"}, true},
		{"free space noise below 1%", func(inv *Inventory) {
			inv.Disks[0].Free += 999 // of 100 000
			inv.Disks[1].Free -= 9   // of 1 000
		}, nil, false},
		{"free space change of 1%", func(inv *Inventory) {
			inv.Disks[0].Free -= 1_000
		}, []string{"disks"}, true},
		{"disk resized", func(inv *Inventory) {
			inv.Disks[1].Total = 2_000
		}, []string{"disks"}, true},
		{"software upgraded", func(inv *Inventory) {
			inv.Software[2].Version = "3.0.13-1"
		}, []string{"software"}, true},
		{"network address added", func(inv *Inventory) {
			inv.Networks[0].Addrs = append(inv.Networks[0].Addrs, "fe80::1/64")
		}, []string{"networks"}, true},
		{"every section", func(inv *Inventory) {
			inv.OS.Version = "13"
			inv.Arch = "arm64"
			inv.CPU.Cores = 8
			inv.Memory.Total = 16 << 30
			inv.Disks = inv.Disks[:1]
			inv.Networks[0].MAC = "52:54:00:00:00:01"
			inv.Software = append(inv.Software, Software{Name: "vim", Version: "9.0", Source: "dpkg"})
			inv.Users = nil
			inv.Admins = []string{"root"}
			inv.Labels["env"] = "test"
		}, []string{"os", "arch", "cpu", "memory", "disks", "networks", "software", "users", "admins", "labels"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, cur := baseInventory(), baseInventory()
			tt.change(&cur)
			changed := InventoryDiff(old, cur)
			if !slices.Equal(changed, tt.want) {
				t.Fatalf("got Diff %q, want %q", changed, tt.want)
			}
			if back := InventoryDiff(cur, old); !slices.Equal(back, tt.want) {
				t.Errorf("got reverse Diff %q, want %q", back, tt.want)
			}

			delta := InventoryDelta(cur, changed)
			for _, s := range inventorySections {
				if !slices.Contains(changed, s) && !inventorySectionEqual(s, delta, Inventory{}) {
					t.Errorf("delta has section %s, which did not change", s)
				}
			}
			got := InventoryApply(old, delta, changed)
			if d := InventoryDiff(got, cur); d != nil {
				t.Errorf("InventoryApply(old, InventoryDelta(cur)) differs from cur in %q", d)
			}
			if tt.exact && !reflect.DeepEqual(got, cur) {
				t.Errorf("InventoryApply(old, InventoryDelta(cur)):\ngot  %+v\nwant %+v", got, cur)
			}
		})
	}
}

func TestInventoryApplyCopies(t *testing.T) {
	old, cur := baseInventory(), baseInventory()
	cur.Software[0].Version = "5.3"
	changed := InventoryDiff(old, cur)
	got := InventoryApply(old, InventoryDelta(cur, changed), changed)
	got.Software[0].Name = "changed"
	got.Networks[0].Addrs[0] = "changed"
	got.Labels["env"] = "changed"
	if !reflect.DeepEqual(old, baseInventory()) || cur.Software[0].Name != "bash" {
		t.Error("Apply's result shares memory with its arguments")
	}
}

func TestInventoryApplyUnknownSection(t *testing.T) {
	old := baseInventory()
	got := InventoryApply(old, Inventory{}, []string{"gpus"})
	if !reflect.DeepEqual(got, old) {
		t.Errorf("got %+v, want the base unchanged", got)
	}
}

func TestDiskFreeNoise(t *testing.T) {
	tests := []struct {
		a, b, total uint64
		want        bool
	}{
		{0, 0, 0, true},
		{0, 1, 0, false},
		{50, 50, 100, true},
		{50, 51, 100, false}, // 1% of 100 is 1
		{50, 51, 150, true},  // 1 < 1.5
		{50, 52, 150, false},
		{0, 1 << 62, 1 << 63, false},
		{1 << 62, 1<<62 + 1<<50, 1 << 63, true},
	}
	for _, tt := range tests {
		if got := diskFreeNoise(tt.a, tt.b, tt.total); got != tt.want {
			t.Errorf("diskFreeNoise(%d, %d, %d): got %v, want %v", tt.a, tt.b, tt.total, got, tt.want)
		}
	}
}
