package discovery

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
)

func TestApplyReport(t *testing.T) {
	now := t0.Add(time.Hour)
	full := fullReport(3)
	full.Collected = t0

	next, changes, ask := applyReport(nil, &full, "i3", now)
	if next == nil || ask || next.Seq != 3 || next.Item != "i3" || !next.Received.Equal(now) || !next.Collected.Equal(t0) || next.Partial {
		t.Fatalf("first full report: got %+v, ask %v", next, ask)
	}
	if len(changes) != 1 || changes[0].Item != itemFirst || changes[0].Seq != 3 || !changes[0].Time.Equal(t0) {
		t.Errorf("first report's changes: got %+v", changes)
	}

	// Not newer: nothing to store.
	for _, seq := range []uint64{2, 3} {
		old := fullReport(seq)
		if n, c, a := applyReport(next, &old, "x", now); n != nil || c != nil || a {
			t.Errorf("report %d over stored 3: got %+v %v %v, want nothing", seq, n, c, a)
		}
	}

	// A delta on its base: only its sections change, unknown ones ignored.
	var d contracts.Inventory
	d.Memory.Total = 16 << 30
	d.Users = []string{"bob"}
	rep := delta(4, 3, d, "memory", "users", "gpu")
	n4, changes, ask := applyReport(next, &rep, "i4", now)
	if ask || n4.Partial || n4.Inventory.Memory.Total != 16<<30 || !slices.Equal(n4.Inventory.Users, []string{"bob"}) || n4.Inventory.OS != full.Inventory.OS {
		t.Errorf("delta on its base: got %+v, ask %v", n4, ask)
	}
	var got []string
	for _, c := range changes {
		got = append(got, fmt.Sprintf("%s %s %s %s>%s", c.Section, c.Change, c.Item, c.From, c.To))
	}
	want := []string{"memory changed memory.total 8589934592>17179869184", "users added bob >", "users removed alice >"}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("delta changes: got %q, want %q", got, want)
	}

	// A delta on a base the site lacks: applied, partial, ask for full; and
	// a delta on a partial inventory asks again.
	rep = delta(6, 5, d, "labels")
	n6, _, ask := applyReport(n4, &rep, "i6", now)
	if !ask || !n6.Partial || n6.Inventory.Labels != nil {
		t.Errorf("delta on a missing base: got %+v, ask %v", n6, ask)
	}
	rep = delta(7, 6, d, "labels")
	if n7, _, ask := applyReport(n6, &rep, "i7", now); !ask || !n7.Partial {
		t.Errorf("delta on a partial inventory: got %+v, ask %v", n7, ask)
	}
	full8 := fullReport(8)
	if n8, _, ask := applyReport(n6, &full8, "i8", now); ask || n8.Partial {
		t.Errorf("full report after partial: got %+v, ask %v", n8, ask)
	}
	rep = delta(2, 1, d, "users")
	if n, _, ask := applyReport(nil, &rep, "i2", now); !ask || !n.Partial || len(n.Inventory.Users) != 1 {
		t.Errorf("delta with nothing stored: got %+v, ask %v", n, ask)
	}
}

func TestInventoryChanges(t *testing.T) {
	old := fullReport(1).Inventory
	cur := fullReport(1).Inventory
	cur.OS.Version, cur.CPU.Cores = "13", 8
	cur.Disks = append([]contracts.Disk{{Device: "/dev/sda1", Mount: "/", FSType: "ext4", Total: 100 << 30, Free: 1}}, contracts.Disk{Device: "/dev/sdb1", Mount: "/data", FSType: "xfs", Total: 1 << 40})
	cur.Networks = []contracts.NetIface{{Name: "eth0", MAC: "52:54:00:AB:CD:EF", Addrs: []string{"fe80::1/64", "10.1.2.3/24"}}}
	cur.Software = []contracts.Software{{Name: "openssl", Version: "3.0.13"}, {Name: "kernel", Version: "6.1"}, {Name: "kernel", Version: "6.2"}}
	cur.Admins = nil
	cur.Labels = map[string]string{"role": "db", "env": "prod"}
	var got []string
	for _, c := range contracts.InventoryChanges(old, cur) {
		got = append(got, fmt.Sprintf("%s %s %s %s>%s", c.Section, c.Change, c.Item, c.From, c.To))
	}
	want := []string{
		"os changed os.version 12>13",
		"cpu changed cpu.cores 4>8",
		"disks added /data >/dev/sdb1 xfs 1099511627776", // free space alone is no change
		"software added kernel >6.1",
		"software added kernel >6.2",
		"software removed nginx 1.22.1>",
		"software changed openssl 3.0.11>3.0.13",
		"admins removed root >",
		"labels added env >prod",
		"labels changed role web>db",
	}
	if !slices.Equal(got, want) {
		t.Errorf("changes:\n got %q\nwant %q", got, want)
	}
}

func TestChangesBounded(t *testing.T) {
	cur := fullReport(1)
	old := fullReport(2)
	for i := range maxChangesPerReport + 10 {
		old.Inventory.Software = append(old.Inventory.Software, contracts.Software{Name: fmt.Sprint("p", i)})
	}
	stored := &storedInventory{Seq: 1, Inventory: cur.Inventory}
	_, changes, _ := applyReport(stored, &old, "i", t0)
	if len(changes) != maxChangesPerReport || !strings.Contains(changes[len(changes)-1].Item, "more changes not listed") {
		t.Errorf("got %d changes, last %+v; want %d with a count of the rest", len(changes), changes[len(changes)-1], maxChangesPerReport)
	}
}

func TestCheckInventory(t *testing.T) {
	ok := fullReport(1).Inventory
	if err := checkInventory(&ok); err != nil {
		t.Fatalf("a normal inventory: %v", err)
	}
	bad := []func(*contracts.Inventory){
		func(i *contracts.Inventory) { i.Software = make([]contracts.Software, maxSoftware+1) },
		func(i *contracts.Inventory) { i.Users = make([]string, maxListItems+1) },
		func(i *contracts.Inventory) { i.Networks[0].Addrs = make([]string, maxListItems+1) },
		func(i *contracts.Inventory) { i.Software[0].Version = strings.Repeat("1", maxString+1) },
		func(i *contracts.Inventory) { i.Labels = map[string]string{strings.Repeat("k", maxString+1): "v"} },
	}
	for i, mutate := range bad {
		inv := fullReport(1).Inventory
		mutate(&inv)
		if err := checkInventory(&inv); contracts.CodeOf(err) != contracts.CodeTooLarge {
			t.Errorf("case %d: got %v, want too_large", i, err)
		}
	}
}

func TestInventoryEnv(t *testing.T) {
	inv := fullReport(1).Inventory
	inv.Networks = append(inv.Networks, contracts.NetIface{Name: "eth1", MAC: "52:54:00:ab:cd:ef", Addrs: []string{"10.1.2.3/16", "192.168.1.1"}})
	p := inventoryEnv(&inv)
	if !slices.Equal(p.IPs, []string{"10.1.2.3", "fe80::1", "192.168.1.1"}) || !slices.Equal(p.MACs, []string{"52:54:00:ab:cd:ef"}) {
		t.Errorf("ips %v, macs %v", p.IPs, p.MACs)
	}
	if len(p.Software) != 2 || p.Software[0].Name != "openssl" || p.OS.Family != "linux" || p.Labels["role"] != "web" || len(p.Disks) != 1 {
		t.Errorf("env: %+v", p)
	}
}
