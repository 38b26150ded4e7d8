package inventory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stewardhq/steward/contracts"
)

// Linux collects the inventory of a Linux machine. Files are read under
// Root; the probes that cannot be pointed at a directory (commands,
// statfs(2), the network interfaces) are fields so tests can fake them, and
// by default run on the host only when Root is "/".
//
// What each section reads:
//
//	os        etc/os-release (else usr/lib/os-release): NAME, VERSION_ID;
//	          proc/sys/kernel/osrelease (else `uname -r`); family "linux"
//	arch      runtime.GOARCH
//	cpu       proc/cpuinfo: "model name" (else cpu, uarch, the ARM
//	          implementer and part, Hardware, "unknown"); cores = the
//	          logical processors listed
//	memory    proc/meminfo: MemTotal
//	disks     proc/self/mounts without pseudo and remote filesystems, one
//	          mount per device; Statfs for sizes
//	networks  Interfaces
//	software  var/lib/dpkg/status, `rpm -qa`, lib/apk/db/installed
//	users     var/run/utmp (else run/utmp, else `who`)
//	admins    etc/group (members of sudo, wheel, admin, by list or primary
//	          group) and etc/passwd (those and every uid 0 account)
//
// Labels are not collected: they are the agent's configuration.
type Linux struct {
	// Root is the directory the machine's files are read under: "/" (or
	// "") on a real machine, a fake tree in tests.
	Root string

	// Run runs a command and returns its standard output. A command that
	// is not installed must return an error matching exec.ErrNotFound: its
	// source is then skipped silently. Nil runs commands with os/exec
	// (LC_ALL=C) when Root is "/", and none otherwise, as if none were
	// installed.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)

	// Statfs returns the size of the filesystem mounted at mount (a path
	// on the machine, not joined with Root) and the bytes available to
	// unprivileged users. Nil uses statfs(2) when Root is "/" and leaves
	// sizes zero otherwise.
	Statfs func(mount string) (total, free uint64, err error)

	// Interfaces lists the network interfaces. Nil uses net.Interfaces
	// when Root is "/" and lists none otherwise.
	Interfaces func() ([]contracts.NetIface, error)
}

// New returns the collector of this platform: Linux on the root filesystem.
// It returns the interface, not *Linux, because the concrete type differs
// by platform and callers must not depend on it.
func New() Collector { return &Linux{Root: "/"} }

var _ Collector = (*Linux)(nil)

// Collect collects the inventory; see Collector for its errors. A section
// that fails keeps what was read of it and adds a SectionError to the
// returned *PartialError; the others are unaffected.
func (l *Linux) Collect(ctx context.Context) (contracts.Inventory, error) {
	inv := contracts.Inventory{Arch: runtime.GOARCH}
	var r result
	var err error
	inv.OS, err = l.osInfo(ctx)
	r.section(contracts.InventorySectionOS, err, inv.OS.Name != "" || inv.OS.Kernel != "")
	inv.CPU, err = l.cpu()
	r.section(contracts.InventorySectionCPU, err, inv.CPU.Cores > 0)
	inv.Memory, err = l.memory()
	r.section(contracts.InventorySectionMemory, err, inv.Memory.Total > 0)
	inv.Disks, err = l.disks()
	r.section(contracts.InventorySectionDisks, err, len(inv.Disks) > 0)
	inv.Networks, err = l.networks()
	r.section(contracts.InventorySectionNetworks, err, len(inv.Networks) > 0)
	inv.Software, err = l.software(ctx)
	r.section(contracts.InventorySectionSoftware, err, len(inv.Software) > 0)
	inv.Users, err = l.users(ctx)
	r.section(contracts.InventorySectionUsers, err, len(inv.Users) > 0)
	inv.Admins, err = l.admins()
	r.section(contracts.InventorySectionAdmins, err, len(inv.Admins) > 0)
	return inv, r.err(ctx)
}

// root returns the directory files are read under.
func (l *Linux) root() string {
	if l.Root == "" {
		return "/"
	}
	return filepath.Clean(l.Root)
}

// host reports whether the collector reads the machine it runs on.
func (l *Linux) host() bool { return l.root() == "/" }

// path returns the machine path p (absolute or not) under Root.
func (l *Linux) path(p string) string { return filepath.Join(l.root(), p) }

// readFile reads the machine file p under Root.
func (l *Linux) readFile(p string) ([]byte, error) { return os.ReadFile(l.path(p)) }

// readFirst reads the first of paths that exists; when none does it returns
// the error of the first.
func (l *Linux) readFirst(paths ...string) ([]byte, error) {
	var first error
	for _, p := range paths {
		data, err := l.readFile(p)
		if err == nil {
			return data, nil
		}
		if first == nil {
			first = err
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return nil, first
}

// run runs a command through Run, or os/exec on the host.
func (l *Linux) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	if l.Run != nil {
		return l.Run(ctx, name, args...)
	}
	if !l.host() {
		return nil, fmt.Errorf("%s: %w (commands do not run under root %s)", name, exec.ErrNotFound, l.root())
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.WaitDelay = 5 * time.Second // a child holding the pipes open cannot block us
	out, err := cmd.Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if line, _, _ := strings.Cut(strings.TrimSpace(string(exit.Stderr)), "\n"); line != "" {
			return out, fmt.Errorf("%s: %w: %s", name, err, line)
		}
		return out, fmt.Errorf("%s: %w", name, err)
	}
	return out, err
}

// osInfo reads the OS name and version and the kernel release.
func (l *Linux) osInfo(ctx context.Context) (contracts.OSInfo, error) {
	info := contracts.OSInfo{Family: "linux"}
	var errs []error
	if data, err := l.readFirst("etc/os-release", "usr/lib/os-release"); err != nil {
		errs = append(errs, err)
	} else {
		kv := parseOSRelease(data)
		info.Name = cmp.Or(kv["NAME"], "Linux") // the default os-release(5) gives
		info.Version = kv["VERSION_ID"]
	}
	if data, err := l.readFile("proc/sys/kernel/osrelease"); err == nil {
		info.Kernel = strings.TrimSpace(string(data))
	} else if out, uerr := l.run(ctx, "uname", "-r"); uerr == nil {
		info.Kernel = strings.TrimSpace(string(out))
	} else {
		errs = append(errs, err, uerr)
	}
	return info, errors.Join(errs...)
}

// parseOSRelease parses os-release(5): KEY=value lines, values optionally
// quoted shell-style.
func parseOSRelease(data []byte) map[string]string {
	kv := make(map[string]string)
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		kv[strings.TrimSpace(k)] = unquoteShell(strings.TrimSpace(v))
	}
	return kv
}

// unquoteShell removes the single or double quotes around v, and in double
// quotes the backslashes escaping a character.
func unquoteShell(v string) string {
	if len(v) < 2 || (v[0] != '"' && v[0] != '\'') || v[len(v)-1] != v[0] {
		return v
	}
	q, v := v[0], v[1:len(v)-1]
	if q == '\'' {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// cpu reads the processor model and the number of logical processors.
func (l *Linux) cpu() (contracts.CPUInfo, error) {
	data, err := l.readFile("proc/cpuinfo")
	if err != nil {
		return contracts.CPUInfo{}, err
	}
	info := parseCPUInfo(data)
	if info.Cores == 0 {
		return info, fmt.Errorf("%s lists no processor", l.path("proc/cpuinfo"))
	}
	return info, nil
}

// parseCPUInfo parses /proc/cpuinfo: "key<tabs>: value" lines, one block
// per logical processor on most architectures (x86, ARM, POWER, RISC-V).
func parseCPUInfo(data []byte) contracts.CPUInfo {
	first := make(map[string]string) // the first value of every key
	cores := 0
	for line := range strings.Lines(string(data)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if k == "processor" {
			cores++
		}
		if _, seen := first[k]; !seen {
			first[k] = v
		}
	}
	if cores == 0 { // s390x: "# processors    : 4"
		cores, _ = strconv.Atoi(first["# processors"])
	}
	model := cmp.Or(first["model name"], first["cpu"], first["uarch"])
	if model == "" {
		model = armModel(first["CPU implementer"], first["CPU part"])
	}
	model = cmp.Or(model, first["Hardware"], "unknown")
	return contracts.CPUInfo{Model: model, Cores: cores}
}

// armImplementers names the ARM implementer codes of /proc/cpuinfo (as
// lscpu does).
var armImplementers = map[string]string{
	"0x41": "ARM", "0x42": "Broadcom", "0x43": "Cavium", "0x46": "Fujitsu",
	"0x48": "HiSilicon", "0x4e": "NVIDIA", "0x50": "APM", "0x51": "Qualcomm",
	"0x53": "Samsung", "0x56": "Marvell", "0x61": "Apple", "0x6d": "Microsoft",
	"0x70": "Phytium", "0xc0": "Ampere",
}

// armParts names the common parts of implementer 0x41 (ARM).
var armParts = map[string]string{
	"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55",
	"0xd07": "Cortex-A57", "0xd08": "Cortex-A72", "0xd09": "Cortex-A73",
	"0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76", "0xd0c": "Neoverse-N1",
	"0xd0d": "Cortex-A77", "0xd40": "Neoverse-V1", "0xd41": "Cortex-A78",
	"0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710",
	"0xd48": "Cortex-X2", "0xd49": "Neoverse-N2", "0xd4f": "Neoverse-V2",
}

// armModel names an ARM processor from its implementer and part codes:
// "ARM Cortex-A72", "Qualcomm part 0x801"; "" without an implementer.
func armModel(implementer, part string) string {
	if implementer == "" {
		return ""
	}
	name := cmp.Or(armImplementers[strings.ToLower(implementer)], "implementer "+implementer)
	if p := armParts[strings.ToLower(part)]; p != "" && strings.EqualFold(implementer, "0x41") {
		return name + " " + p
	}
	if part != "" {
		return name + " part " + part
	}
	return name
}

// memory reads the physical memory size.
func (l *Linux) memory() (contracts.MemoryInfo, error) {
	data, err := l.readFile("proc/meminfo")
	if err != nil {
		return contracts.MemoryInfo{}, err
	}
	for line := range strings.Lines(string(data)) {
		rest, ok := strings.CutPrefix(line, "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			break
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return contracts.MemoryInfo{}, fmt.Errorf("meminfo: MemTotal: %w", err)
		}
		if len(f) > 1 && f[1] == "kB" { // always kB (KiB) in practice
			n *= 1024
		}
		return contracts.MemoryInfo{Total: n}, nil
	}
	return contracts.MemoryInfo{}, fmt.Errorf("%s has no MemTotal", l.path("proc/meminfo"))
}

// skipFS names the filesystem types that are not disks: pseudo
// filesystems, in-memory ones, read-only images (snaps), and remote ones,
// whose statfs(2) can hang for as long as their server is away. Types
// "cgroup*" and "fuse.*" (lxcfs, gvfs, sshfs, ...) are skipped as well;
// "fuseblk" (ntfs-3g, exfat) is a disk. "overlay" is kept only mounted at
// "/": a container's root.
var skipFS = map[string]bool{
	"autofs": true, "binfmt_misc": true, "bpf": true, "configfs": true,
	"debugfs": true, "devpts": true, "devtmpfs": true, "efivarfs": true,
	"fuse": true, "fusectl": true, "hugetlbfs": true, "mqueue": true,
	"nfsd": true, "nsfs": true, "proc": true, "pstore": true, "ramfs": true,
	"rootfs": true, "rpc_pipefs": true, "securityfs": true, "selinuxfs": true,
	"squashfs": true, "sysfs": true, "tmpfs": true, "tracefs": true,
	// remote
	"9p": true, "afs": true, "ceph": true, "cifs": true, "glusterfs": true,
	"lustre": true, "ncpfs": true, "nfs": true, "nfs4": true, "smb3": true,
	"smbfs": true, "virtiofs": true,
}

// disk reports whether a filesystem of type fstype mounted at mount is a
// disk.
func disk(fstype, mount string) bool {
	switch {
	case skipFS[fstype], strings.HasPrefix(fstype, "cgroup"), strings.HasPrefix(fstype, "fuse."):
		return false
	case fstype == "overlay" || fstype == "aufs":
		return mount == "/"
	}
	return true
}

// parseMounts parses /proc/self/mounts (fstab(5) format) and returns the
// disks in mount order, where a later mount on the same path hides the
// earlier.
func parseMounts(data []byte) []contracts.Disk {
	var disks []contracts.Disk
	at := make(map[string]int) // mount -> index in disks
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		d := contracts.Disk{Device: unescapeMount(f[0]), Mount: unescapeMount(f[1]), FSType: f[2]}
		if !disk(d.FSType, d.Mount) {
			if i, ok := at[d.Mount]; ok { // hidden by a filesystem that is not a disk
				disks[i].Mount = ""
			}
			continue
		}
		if i, ok := at[d.Mount]; ok {
			disks[i].Mount = ""
		}
		at[d.Mount] = len(disks)
		disks = append(disks, d)
	}
	return slices.DeleteFunc(disks, func(d contracts.Disk) bool { return d.Mount == "" })
}

// unescapeMount decodes the octal escapes (\040 for a space) of a field
// of /proc/self/mounts.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// disks lists the mounted disks, one mount per device (the shortest path,
// as df does: btrfs subvolumes and bind mounts are not counted twice),
// without files bind-mounted on files (a container's /etc/hosts), sorted
// by mount, with their sizes.
func (l *Linux) disks() ([]contracts.Disk, error) {
	data, err := l.readFile("proc/self/mounts")
	if err != nil {
		return nil, err
	}
	var mounted []contracts.Disk
	for _, d := range parseMounts(data) {
		if fi, err := os.Stat(l.path(d.Mount)); err == nil && !fi.IsDir() {
			continue
		}
		mounted = append(mounted, d)
	}
	best := make(map[string]contracts.Disk) // device -> its shortest mount
	for _, d := range mounted {
		if b, ok := best[d.Device]; !ok || len(d.Mount) < len(b.Mount) {
			best[d.Device] = d
		}
	}
	disks := make([]contracts.Disk, 0, len(best))
	for _, d := range mounted {
		if best[d.Device].Mount == d.Mount {
			disks = append(disks, d)
		}
	}
	slices.SortFunc(disks, func(a, b contracts.Disk) int { return cmp.Compare(a.Mount, b.Mount) })

	statfs := l.Statfs
	if statfs == nil {
		if !l.host() {
			return disks, nil
		}
		statfs = hostStatfs
	}
	var errs []error
	for i := range disks {
		total, free, err := statfs(disks[i].Mount)
		if err != nil {
			errs = append(errs, fmt.Errorf("statfs %s: %w", disks[i].Mount, err))
			continue
		}
		disks[i].Total, disks[i].Free = total, free
	}
	return disks, errors.Join(errs...)
}

// hostStatfs returns the size of the filesystem at path and the bytes
// available to unprivileged users (df's Size and Avail).
func hostStatfs(path string) (total, free uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, 0, err
	}
	bs := uint64(st.Frsize)
	if bs == 0 {
		bs = uint64(st.Bsize)
	}
	return st.Blocks * bs, st.Bavail * bs, nil
}

// networks lists the network interfaces.
func (l *Linux) networks() ([]contracts.NetIface, error) {
	switch {
	case l.Interfaces != nil:
		return l.Interfaces()
	case l.host():
		return hostInterfaces()
	}
	return []contracts.NetIface{}, nil
}
