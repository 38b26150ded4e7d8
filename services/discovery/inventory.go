package discovery

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unique"

	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/discovery/collections"
)

// This file is the inventory domain: what a report does to the stored
// inventory, what changed for the history, the limits of a report, and the
// query environment an inventory gives. Nothing here knows of NATS.

// storedInventory is the value kept in InventoryBucket under a client's ID.
type storedInventory struct {
	Seq       uint64              `json:"seq"`
	Collected time.Time           `json:"collected"`
	Received  time.Time           `json:"received"`
	Item      string              `json:"item"` // the outbox item of the last report stored
	Inventory contracts.Inventory `json:"inventory"`
	// Partial is set when a delta came whose base the site did not have:
	// the sections it did not carry may be stale until the full report the
	// site asked for arrives.
	Partial bool `json:"partial,omitempty"`
}

// The one change recorded for a client's first report (listing every
// package as added says nothing).
const (
	sectionInventory = "inventory"
	itemFirst        = "first inventory"
)

// maxChangesPerReport bounds the changes one report adds to the history
// (one event, well under the server's payload limit); the rest are counted
// in the last one.
const maxChangesPerReport = 2000

// Limits of one report. A report over them is refused for good
// (CodeTooLarge): it would only be refused again. The size leaves room, under
// the server's 1 MiB payload limit, for the stored record around the
// inventory.
const (
	maxReportBytes = 768 << 10
	maxSoftware    = 20_000
	maxListItems   = 1024 // disks, networks, addresses of one interface, users, admins, labels
	maxString      = 1024 // any one string
)

// applyReport returns the stored inventory after rep (outbox item item,
// received at now), the changes it makes for the history, and whether the
// site must ask the agent for a full report. A nil next means there is
// nothing to store: rep is not newer than what is stored (a resend, or a
// report overtaken by a later one).
//
// A full report replaces the inventory. A delta replaces the sections it
// names (unknown names, from a newer agent, are ignored) in the stored
// inventory when that is its base; otherwise in whatever is stored (or
// nothing), marked Partial, and the site asks for a full report.
func applyReport(cur *storedInventory, rep *contracts.InventoryReport, item string, now time.Time) (next *storedInventory, changes []contracts.InventoryChange, askFull bool) {
	if cur != nil && rep.Seq <= cur.Seq {
		return nil, nil, false
	}
	next = &storedInventory{Seq: rep.Seq, Collected: rep.Collected.UTC(), Received: now.UTC(), Item: item}
	if next.Collected.IsZero() {
		next.Collected = next.Received
	}
	var base contracts.Inventory
	if cur != nil {
		base = cur.Inventory
	}
	if rep.Full {
		next.Inventory = rep.Inventory
	} else {
		next.Inventory = contracts.InventoryApply(base, rep.Inventory, rep.Changed)
		askFull = cur == nil || cur.Seq != rep.Base || cur.Partial
		next.Partial = askFull
	}
	if cur == nil {
		changes = []contracts.InventoryChange{{Section: sectionInventory, Change: contracts.InventoryChangeAdded, Item: itemFirst}}
	} else {
		changes = contracts.InventoryChanges(cur.Inventory, next.Inventory)
	}
	if len(changes) > maxChangesPerReport {
		more := len(changes) - maxChangesPerReport + 1
		changes = append(changes[:maxChangesPerReport-1], contracts.InventoryChange{
			Section: sectionInventory, Change: contracts.InventoryChangeChanged, Item: strconv.Itoa(more) + " more changes not listed",
		})
	}
	for i := range changes {
		changes[i].Time, changes[i].Seq = next.Collected, rep.Seq
	}
	return next, changes, askFull
}

// checkInventory refuses an inventory over the limits (CodeTooLarge).
func checkInventory(inv *contracts.Inventory) error {
	tooLarge := func(what string, n, limit int) error {
		return contracts.Errorf(contracts.CodeTooLarge, "inventory has %d %s: at most %d", n, what, limit)
	}
	count := func(what string, n, limit int) error {
		if n > limit {
			return tooLarge(what, n, limit)
		}
		return nil
	}
	var long string
	str := func(s string) {
		if len(s) > maxString && long == "" {
			long = s[:32] + "..."
		}
	}
	errs := []error{
		count("packages", len(inv.Software), maxSoftware),
		count("disks", len(inv.Disks), maxListItems),
		count("network interfaces", len(inv.Networks), maxListItems),
		count("users", len(inv.Users), maxListItems),
		count("admins", len(inv.Admins), maxListItems),
		count("labels", len(inv.Labels), maxListItems),
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	for _, s := range []string{inv.OS.Name, inv.OS.Version, inv.OS.Family, inv.OS.Kernel, inv.Arch, inv.CPU.Model} {
		str(s)
	}
	for _, d := range inv.Disks {
		str(d.Device)
		str(d.Mount)
		str(d.FSType)
	}
	for _, n := range inv.Networks {
		if len(n.Addrs) > maxListItems {
			return tooLarge("addresses on "+n.Name, len(n.Addrs), maxListItems)
		}
		str(n.Name)
		str(n.MAC)
		for _, a := range n.Addrs {
			str(a)
		}
	}
	for _, p := range inv.Software {
		str(p.Name)
		str(p.Version)
		str(p.Source)
	}
	for _, l := range [][]string{inv.Users, inv.Admins} {
		for _, s := range l {
			str(s)
		}
	}
	for k, v := range inv.Labels {
		str(k)
		str(v)
	}
	if long != "" {
		return contracts.Errorf(contracts.CodeTooLarge, "inventory string %q is over %d bytes", long, maxString)
	}
	return nil
}

// envPart is the part of a client's query environment its inventory gives.
type envPart struct {
	OS       collections.OS
	Arch     string
	CPU      collections.CPU
	Memory   collections.Memory
	Disks    []*collections.Disk
	IPs      []string
	MACs     []string
	Software []*collections.Software
	Users    []string
	Admins   []string
	Labels   map[string]string
}

// intern returns the canonical copy of s, so that the many clients with
// the same package names and versions share one string each.
func intern(s string) string { return unique.Make(s).Value() }

// inventoryEnv makes the query environment's inventory part: addresses
// without their prefix length, MACs in lower case, each once.
func inventoryEnv(inv *contracts.Inventory) *envPart {
	p := &envPart{
		OS:     collections.OS{Name: intern(inv.OS.Name), Version: intern(inv.OS.Version), Family: intern(inv.OS.Family), Kernel: intern(inv.OS.Kernel)},
		Arch:   intern(inv.Arch),
		CPU:    collections.CPU{Model: intern(inv.CPU.Model), Cores: inv.CPU.Cores},
		Memory: collections.Memory{Total: inv.Memory.Total},
		Labels: inv.Labels,
	}
	for _, d := range inv.Disks {
		p.Disks = append(p.Disks, &collections.Disk{Device: d.Device, Mount: d.Mount, FSType: intern(d.FSType), Total: d.Total, Free: d.Free})
	}
	for _, n := range inv.Networks {
		if m := strings.ToLower(n.MAC); m != "" && !slices.Contains(p.MACs, m) {
			p.MACs = append(p.MACs, m)
		}
		for _, a := range n.Addrs {
			ip := a
			if pfx, err := netip.ParsePrefix(a); err == nil {
				ip = pfx.Addr().String()
			} else if addr, err := netip.ParseAddr(a); err == nil {
				ip = addr.String()
			}
			if !slices.Contains(p.IPs, ip) {
				p.IPs = append(p.IPs, ip)
			}
		}
	}
	for _, s := range inv.Software {
		p.Software = append(p.Software, &collections.Software{Name: intern(s.Name), Version: intern(s.Version), Source: intern(s.Source)})
	}
	for _, u := range inv.Users {
		p.Users = append(p.Users, intern(u))
	}
	for _, a := range inv.Admins {
		p.Admins = append(p.Admins, intern(a))
	}
	return p
}
