package collections

import (
	"maps"
	"slices"
)

// Env is what a query sees of one client: the fields of the query language
// (see the discovery README). The expr tags are the names queries use.
// Disks and Software are pointers so that a query's closures over them
// (any(software, .name == "openssl")) do not copy every element.
type Env struct {
	ID       string            `expr:"id"`
	Name     string            `expr:"name"`
	Site     string            `expr:"site"`
	OS       OS                `expr:"os"`
	Arch     string            `expr:"arch"`
	CPU      CPU               `expr:"cpu"`
	Memory   Memory            `expr:"memory"`
	Disks    []*Disk           `expr:"disks"`
	IPs      []string          `expr:"ips"` // addresses without prefix length
	MACs     []string          `expr:"macs"`
	Software []*Software       `expr:"software"`
	Users    []string          `expr:"users"`
	Admins   []string          `expr:"admins"`
	Labels   map[string]string `expr:"labels"`

	// Approved is the client's status: only approved clients are in All
	// Systems, so only they are members of any collection. Queries do not
	// see it.
	Approved bool `expr:"-"`

	// Set by the engine from the fields (see sizeFields): queries reading
	// long or many fields are charged more (see Query), those reading
	// large ones do not match.
	long, many, large fieldSet
}

// OS is the operating system (os.name, os.version, os.family, os.kernel).
type OS struct {
	Name    string `expr:"name"`
	Version string `expr:"version"`
	Family  string `expr:"family"`
	Kernel  string `expr:"kernel"`
}

// CPU is the processors (cpu.model, cpu.cores).
type CPU struct {
	Model string `expr:"model"`
	Cores int    `expr:"cores"`
}

// Memory is physical memory (memory.total, in bytes).
type Memory struct {
	Total uint64 `expr:"total"`
}

// Disk is a mounted filesystem.
type Disk struct {
	Device string `expr:"device"`
	Mount  string `expr:"mount"`
	FSType string `expr:"fsType"`
	Total  uint64 `expr:"total"`
	Free   uint64 `expr:"free"`
}

// Software is an installed package.
type Software struct {
	Name    string `expr:"name"`
	Version string `expr:"version"`
	Source  string `expr:"source"`
}

// field is one top-level field of Env, a bit of a fieldSet.
type field uint

const (
	fID field = iota
	fName
	fSite
	fOS
	fArch
	fCPU
	fMemory
	fDisks
	fIPs
	fMACs
	fSoftware
	fUsers
	fAdmins
	fLabels
	numFields
)

// fieldNames are the query names of the fields, by field.
var fieldNames = [numFields]string{
	fID: "id", fName: "name", fSite: "site", fOS: "os", fArch: "arch", fCPU: "cpu",
	fMemory: "memory", fDisks: "disks", fIPs: "ips", fMACs: "macs", fSoftware: "software",
	fUsers: "users", fAdmins: "admins", fLabels: "labels",
}

// fieldSet is a set of fields.
type fieldSet uint32

const allFields = fieldSet(1<<numFields - 1)

func (s fieldSet) has(f field) bool { return s&(1<<f) != 0 }

// changedFields returns the fields in which a and b differ.
func changedFields(a, b *Env) fieldSet {
	var s fieldSet
	set := func(f field, differ bool) {
		if differ {
			s |= 1 << f
		}
	}
	set(fID, a.ID != b.ID)
	set(fName, a.Name != b.Name)
	set(fSite, a.Site != b.Site)
	set(fOS, a.OS != b.OS)
	set(fArch, a.Arch != b.Arch)
	set(fCPU, a.CPU != b.CPU)
	set(fMemory, a.Memory != b.Memory)
	set(fDisks, !sameList(a.Disks, b.Disks, equalAt[Disk]))
	set(fIPs, !sameList(a.IPs, b.IPs, equal[string]))
	set(fMACs, !sameList(a.MACs, b.MACs, equal[string]))
	set(fSoftware, !sameList(a.Software, b.Software, equalAt[Software]))
	set(fUsers, !sameList(a.Users, b.Users, equal[string]))
	set(fAdmins, !sameList(a.Admins, b.Admins, equal[string]))
	set(fLabels, !maps.Equal(a.Labels, b.Labels))
	return s
}

// sameList reports whether two lists hold equal elements. The same
// backing array, as an unchanged inventory shares between a client's old
// and new environment, is equal at once: a heartbeat costs no walk through
// a thousand packages.
func sameList[T any](a, b []T, eq func(x, y T) bool) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true
	}
	return slices.EqualFunc(a, b, eq)
}

func equal[T comparable](x, y T) bool { return x == y }

// equalAt compares what two pointers point to.
func equalAt[T comparable](x, y *T) bool { return x == y || *x == *y }

// sizeFields returns, among the fields fs of env, those holding a string
// over 64 bytes (long), a list or map other than software of over 256
// items (many), and a string over MaxEnvString bytes or a list or map over
// MaxEnvList items (large). The inventory refuses reports that large; the
// record and heartbeat fields are not bounded there.
func sizeFields(env *Env, fs fieldSet) (long, many, large fieldSet) {
	var f field
	str := func(ss ...string) {
		for _, s := range ss {
			if len(s) > shortString {
				long |= 1 << f
				if len(s) > MaxEnvString {
					large |= 1 << f
				}
			}
		}
	}
	items := func(n int) {
		if n > fewItems && f != fSoftware {
			many |= 1 << f
		}
		if n > MaxEnvList {
			large |= 1 << f
		}
	}
	for f = range numFields {
		if !fs.has(f) {
			continue
		}
		switch f {
		case fID:
			str(env.ID)
		case fName:
			str(env.Name)
		case fSite:
			str(env.Site)
		case fOS:
			str(env.OS.Name, env.OS.Version, env.OS.Family, env.OS.Kernel)
		case fArch:
			str(env.Arch)
		case fCPU:
			str(env.CPU.Model)
		case fDisks:
			items(len(env.Disks))
			for _, d := range env.Disks {
				str(d.Device, d.Mount, d.FSType)
			}
		case fIPs:
			items(len(env.IPs))
			str(env.IPs...)
		case fMACs:
			items(len(env.MACs))
			str(env.MACs...)
		case fSoftware:
			items(len(env.Software))
			for _, s := range env.Software {
				str(s.Name, s.Version, s.Source)
			}
		case fUsers:
			items(len(env.Users))
			str(env.Users...)
		case fAdmins:
			items(len(env.Admins))
			str(env.Admins...)
		case fLabels:
			items(len(env.Labels))
			for k, v := range env.Labels {
				str(k, v)
			}
		}
	}
	return long, many, large
}
