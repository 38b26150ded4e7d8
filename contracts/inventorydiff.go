package contracts

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Inventory comparison, shared by the agent (which sends deltas of the
// sections that changed) and the site (which applies them and keeps the
// history of changes).

// Top-level sections of an inventory, by their JSON names: the names of
// InventoryReport.Changed and InventoryChange.Section.
const (
	InventorySectionOS       = "os"
	InventorySectionArch     = "arch"
	InventorySectionCPU      = "cpu"
	InventorySectionMemory   = "memory"
	InventorySectionDisks    = "disks"
	InventorySectionNetworks = "networks"
	InventorySectionSoftware = "software"
	InventorySectionUsers    = "users"
	InventorySectionAdmins   = "admins"
	InventorySectionLabels   = "labels"
)

// inventorySections is every section in the fixed order InventoryDiff and InventoryChanges use.
var inventorySections = []string{
	InventorySectionOS, InventorySectionArch, InventorySectionCPU, InventorySectionMemory, InventorySectionDisks,
	InventorySectionNetworks, InventorySectionSoftware, InventorySectionUsers, InventorySectionAdmins, InventorySectionLabels,
}

// Change kinds of InventoryChange.
const (
	InventoryChangeAdded   = "added"
	InventoryChangeRemoved = "removed"
	InventoryChangeChanged = "changed"
)

// InventoryChanges lists what changed from old to cur, for the site's history, in
// section order and, within a section, by item (for one item, removals
// before additions). Time and Seq are left for the caller. Diffing against
// a zero Inventory lists everything as added or changed: callers skip the
// first report of a client.
//
// Items by section:
//
//	os, arch, cpu, memory  the field's query name ("os.version",
//	                       "cpu.model", "memory.total"), changed From To
//	disks                  the mount; From/To "device fstype total"
//	networks               the name; From/To "mac addr,addr" (sorted)
//	software               the package name; From/To the version
//	users, admins          the name
//	labels                 the key; From/To the value
//
// Added items have To only, removed ones From only. A package whose only
// installed version changed is "changed"; with several versions installed
// (rpm kernels) each version added or removed is listed on its own. Free
// disk space is a measure, not an inventory change, and is never listed.
func InventoryChanges(old, cur Inventory) []InventoryChange {
	var c []InventoryChange
	field := func(section, item, from, to string) {
		if from != to {
			c = append(c, InventoryChange{Section: section, Change: InventoryChangeChanged, Item: item, From: from, To: to})
		}
	}
	field(InventorySectionOS, "os.name", old.OS.Name, cur.OS.Name)
	field(InventorySectionOS, "os.version", old.OS.Version, cur.OS.Version)
	field(InventorySectionOS, "os.family", old.OS.Family, cur.OS.Family)
	field(InventorySectionOS, "os.kernel", old.OS.Kernel, cur.OS.Kernel)
	field(InventorySectionArch, "arch", old.Arch, cur.Arch)
	field(InventorySectionCPU, "cpu.model", old.CPU.Model, cur.CPU.Model)
	field(InventorySectionCPU, "cpu.cores", strconv.Itoa(old.CPU.Cores), strconv.Itoa(cur.CPU.Cores))
	field(InventorySectionMemory, "memory.total", strconv.FormatUint(old.Memory.Total, 10), strconv.FormatUint(cur.Memory.Total, 10))
	c = append(c, keyedChanges(InventorySectionDisks, diskItems(old.Disks), diskItems(cur.Disks))...)
	c = append(c, keyedChanges(InventorySectionNetworks, networkItems(old.Networks), networkItems(cur.Networks))...)
	c = append(c, softwareChanges(old.Software, cur.Software)...)
	c = append(c, keyedChanges(InventorySectionUsers, nameItems(old.Users), nameItems(cur.Users))...)
	c = append(c, keyedChanges(InventorySectionAdmins, nameItems(old.Admins), nameItems(cur.Admins))...)
	c = append(c, keyedChanges(InventorySectionLabels, old.Labels, cur.Labels)...)
	return c
}

// keyed lists the items (keys) added to, removed from and changed
// (another value) between old and cur, by key.
func keyedChanges(section string, old, cur map[string]string) []InventoryChange {
	var c []InventoryChange
	for _, k := range slices.Sorted(maps.Keys(keyUnion(old, cur))) {
		o, inOld := old[k]
		n, inCur := cur[k]
		switch {
		case !inOld:
			c = append(c, InventoryChange{Section: section, Change: InventoryChangeAdded, Item: k, To: n})
		case !inCur:
			c = append(c, InventoryChange{Section: section, Change: InventoryChangeRemoved, Item: k, From: o})
		case o != n:
			c = append(c, InventoryChange{Section: section, Change: InventoryChangeChanged, Item: k, From: o, To: n})
		}
	}
	return c
}

// keyUnion returns the keys of a and b.
func keyUnion[V any](a, b map[string]V) map[string]bool {
	u := make(map[string]bool, len(a)+len(b))
	for k := range a {
		u[k] = true
	}
	for k := range b {
		u[k] = true
	}
	return u
}

// diskItems describes disks by mount, free space left out.
func diskItems(disks []Disk) map[string]string {
	m := make(map[string]string, len(disks))
	for _, d := range disks {
		m[d.Mount] = d.Device + " " + d.FSType + " " + strconv.FormatUint(d.Total, 10)
	}
	return m
}

// networkItems describes interfaces by name.
func networkItems(ifaces []NetIface) map[string]string {
	m := make(map[string]string, len(ifaces))
	for _, n := range ifaces {
		m[n.Name] = strings.TrimSpace(n.MAC + " " + strings.Join(sortedStrings(n.Addrs), ","))
	}
	return m
}

// nameItems makes a set of names a map with empty values.
func nameItems(names []string) map[string]string {
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[n] = ""
	}
	return m
}

// softwareChanges lists packages added, removed and changed by name.
func softwareChanges(old, cur []Software) []InventoryChange {
	versions := func(s []Software) map[string][]string {
		m := make(map[string][]string)
		for _, p := range s {
			if !slices.Contains(m[p.Name], p.Version) {
				m[p.Name] = append(m[p.Name], p.Version)
			}
		}
		return m
	}
	ov, cv := versions(old), versions(cur)
	var c []InventoryChange
	for _, name := range slices.Sorted(maps.Keys(keyUnion(ov, cv))) {
		removed := stringsWithout(ov[name], cv[name])
		added := stringsWithout(cv[name], ov[name])
		if len(removed) == 1 && len(added) == 1 {
			c = append(c, InventoryChange{Section: InventorySectionSoftware, Change: InventoryChangeChanged, Item: name, From: removed[0], To: added[0]})
			continue
		}
		for _, v := range removed {
			c = append(c, InventoryChange{Section: InventorySectionSoftware, Change: InventoryChangeRemoved, Item: name, From: v})
		}
		for _, v := range added {
			c = append(c, InventoryChange{Section: InventorySectionSoftware, Change: InventoryChangeAdded, Item: name, To: v})
		}
	}
	return c
}

// stringsWithout returns the elements of a not in b, sorted.
func stringsWithout(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}

// InventoryDiff returns the sections (InventorySectionOS, ...) in which cur differs from old,
// in the fixed order of the sections; nil when none does. Lists compare as
// sets (their order does not matter; nil and empty are equal).
//
// A disk whose only change is less than 1% of its Total in Free is
// unchanged: free space moves all the time, and a delta is not worth
// sending for it. The agent must therefore diff against the inventory it
// last reported, not the one it last collected, or slow drifts are never
// seen; full reports carry the exact free space.
func InventoryDiff(old, cur Inventory) []string {
	var changed []string
	for _, s := range inventorySections {
		if !inventorySectionEqual(s, old, cur) {
			changed = append(changed, s)
		}
	}
	return changed
}

// InventoryDelta returns cur with only the sections in changed; the others are
// zero. Unknown section names are ignored.
func InventoryDelta(cur Inventory, changed []string) Inventory {
	var d Inventory
	for _, s := range changed {
		copyInventorySection(&d, cur, s)
	}
	return d
}

// InventoryApply returns base with the sections in changed replaced by delta's:
// the full inventory a delta report describes, given the inventory of its
// base report. Unknown section names are ignored, so a site can apply the
// deltas of a newer agent. The result shares no memory with its arguments.
func InventoryApply(base, delta Inventory, changed []string) Inventory {
	out := InventoryDelta(base, inventorySections)
	for _, s := range changed {
		copyInventorySection(&out, delta, s)
	}
	return out
}

// copyInventorySection copies the section named s of src into dst, cloning lists.
func copyInventorySection(dst *Inventory, src Inventory, s string) {
	switch s {
	case InventorySectionOS:
		dst.OS = src.OS
	case InventorySectionArch:
		dst.Arch = src.Arch
	case InventorySectionCPU:
		dst.CPU = src.CPU
	case InventorySectionMemory:
		dst.Memory = src.Memory
	case InventorySectionDisks:
		dst.Disks = slices.Clone(src.Disks)
	case InventorySectionNetworks:
		dst.Networks = slices.Clone(src.Networks)
		for i := range dst.Networks {
			dst.Networks[i].Addrs = slices.Clone(dst.Networks[i].Addrs)
		}
	case InventorySectionSoftware:
		dst.Software = slices.Clone(src.Software)
	case InventorySectionUsers:
		dst.Users = slices.Clone(src.Users)
	case InventorySectionAdmins:
		dst.Admins = slices.Clone(src.Admins)
	case InventorySectionLabels:
		dst.Labels = maps.Clone(src.Labels)
	}
}

// inventorySectionEqual reports whether section s is the same in a and b.
func inventorySectionEqual(s string, a, b Inventory) bool {
	switch s {
	case InventorySectionOS:
		return a.OS == b.OS
	case InventorySectionArch:
		return a.Arch == b.Arch
	case InventorySectionCPU:
		return a.CPU == b.CPU
	case InventorySectionMemory:
		return a.Memory == b.Memory
	case InventorySectionDisks:
		return slices.EqualFunc(sortedDisks(a.Disks), sortedDisks(b.Disks), func(x, y Disk) bool {
			return x.Device == y.Device && x.Mount == y.Mount && x.FSType == y.FSType &&
				x.Total == y.Total && diskFreeNoise(x.Free, y.Free, y.Total)
		})
	case InventorySectionNetworks:
		return slices.EqualFunc(sortedNetworks(a.Networks), sortedNetworks(b.Networks), func(x, y NetIface) bool {
			return x.Name == y.Name && x.MAC == y.MAC && slices.Equal(x.Addrs, y.Addrs)
		})
	case InventorySectionSoftware:
		return slices.Equal(sortedSoftware(a.Software), sortedSoftware(b.Software))
	case InventorySectionUsers:
		return slices.Equal(sortedStrings(a.Users), sortedStrings(b.Users))
	case InventorySectionAdmins:
		return slices.Equal(sortedStrings(a.Admins), sortedStrings(b.Admins))
	case InventorySectionLabels:
		return maps.Equal(a.Labels, b.Labels)
	}
	return true
}

// diskFreeNoise reports whether free space going from a to b is less than 1%
// of total.
func diskFreeNoise(a, b, total uint64) bool {
	d := max(a, b) - min(a, b)
	onePercent := total / 100
	if total%100 != 0 {
		onePercent++ // d < total/100 exactly, stringsWithout overflowing d*100
	}
	return d < onePercent || d == 0
}

// sorted returns a sorted copy of s.
func sortedStrings(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// sortedDisks returns a copy of disks sorted by mount and device.
func sortedDisks(disks []Disk) []Disk {
	disks = slices.Clone(disks)
	slices.SortFunc(disks, func(a, b Disk) int {
		return cmp.Or(cmp.Compare(a.Mount, b.Mount), cmp.Compare(a.Device, b.Device))
	})
	return disks
}

// sortedNetworks returns a copy of ifaces sorted by name, their addresses
// sorted.
func sortedNetworks(ifaces []NetIface) []NetIface {
	ifaces = slices.Clone(ifaces)
	for i := range ifaces {
		ifaces[i].Addrs = sortedStrings(ifaces[i].Addrs)
	}
	slices.SortFunc(ifaces, func(a, b NetIface) int { return cmp.Compare(a.Name, b.Name) })
	return ifaces
}

// sortedSoftware returns a copy of s sorted by name, version and source.
func sortedSoftware(s []Software) []Software {
	s = slices.Clone(s)
	slices.SortFunc(s, func(a, b Software) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Version, b.Version), cmp.Compare(a.Source, b.Source))
	})
	return s
}

// InventorySections lists every section, in the fixed order InventoryDiff
// and InventoryChanges use.
func InventorySections() []string { return slices.Clone(inventorySections) }
