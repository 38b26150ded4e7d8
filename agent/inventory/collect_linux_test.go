package inventory

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/stewardhq/steward/contracts"
)

// utmpRecord is glibc's struct utmp on Linux, to write test utmp files.
type utmpRecord struct {
	Type    int16
	_       [2]byte
	Pid     int32
	Line    [32]byte
	ID      [4]byte
	User    [32]byte
	Host    [256]byte
	Exit    [2]int16
	Session int32
	Tv      [2]int32
	AddrV6  [4]int32
	_       [20]byte
}

// writeUtmp writes a utmp file of (type, user) records, plus a partial
// record at the end, as if one were being written.
func writeUtmp(t *testing.T, path string, records ...utmpRecord) {
	t.Helper()
	if n := binary.Size(utmpRecord{}); n != utmpSize {
		t.Fatalf("utmp record is %d bytes, want %d", n, utmpSize)
	}
	var buf []byte
	for _, r := range records {
		var err error
		if buf, err = binary.Append(buf, binary.NativeEndian, r); err != nil {
			t.Fatal(err)
		}
	}
	buf = append(buf, make([]byte, 100)...)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
}

func utmp(typ int16, user string) utmpRecord {
	r := utmpRecord{Type: typ, Pid: 4242}
	copy(r.User[:], user)
	copy(r.Line[:], "pts/0")
	return r
}

// fakeRoot copies testdata/name to a temporary directory, where the test
// may add files.
func fakeRoot(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("testdata", name))); err != nil {
		t.Fatal(err)
	}
	return dir
}

// fakeRun answers the commands in outputs ("name arg..." -> output or
// error); any other is not installed.
func fakeRun(outputs map[string]any) func(context.Context, string, ...string) ([]byte, error) {
	return func(_ context.Context, name string, args ...string) ([]byte, error) {
		switch out := outputs[strings.Join(append([]string{name}, args...), " ")].(type) {
		case string:
			return []byte(out), nil
		case error:
			return nil, out
		}
		return nil, &exec.Error{Name: name, Err: exec.ErrNotFound}
	}
}

// fakeStatfs sizes every filesystem 100 GiB with 40 GiB free, but fails for
// the mounts in fail.
func fakeStatfs(fail ...string) func(string) (uint64, uint64, error) {
	return func(mount string) (uint64, uint64, error) {
		if slices.Contains(fail, mount) {
			return 0, 0, fmt.Errorf("permission denied")
		}
		return 100 << 30, 40 << 30, nil
	}
}

var fakeIfaces = []contracts.NetIface{
	{Name: "eth0", MAC: "52:54:00:12:34:56", Addrs: []string{"192.168.1.10/24", "fe80::5054:ff:fe12:3456/64"}},
	{Name: "lo", Addrs: []string{"127.0.0.1/8", "::1/128"}},
}

const rpmQuery = `rpm -qa --queryformat %{NAME}\t%{VERSION}-%{RELEASE}\n`

func TestLinuxCollect(t *testing.T) {
	const gib = 100 << 30
	disk := func(dev, mount, fs string) contracts.Disk {
		return contracts.Disk{Device: dev, Mount: mount, FSType: fs, Total: gib, Free: 40 << 30}
	}
	debianDisks := []contracts.Disk{
		disk("/dev/sda1", "/", "ext4"),
		disk("/dev/sda2", "/boot", "ext4"),
		disk("/dev/sda3", "/boot/efi", "vfat"),
		disk("/dev/sdb1", "/home", "btrfs"),
		disk("/dev/sdd1", "/media/usb", "fuseblk"),
		disk("/dev/sdc1", "/mnt/my disk", "xfs"),
	}
	debianSoftware := []contracts.Software{
		{Name: "base-files", Version: "12.4+deb12u5", Source: "dpkg"},
		{Name: "libc6", Version: "2.36-9+deb12u4", Source: "dpkg"},
		{Name: "nginx", Version: "1.22.1-9", Source: "dpkg"},
		{Name: "openssl", Version: "3.0.11-1~deb12u2", Source: "dpkg"},
	}
	debian := contracts.Inventory{
		OS:       contracts.OSInfo{Name: "Debian GNU/Linux", Version: "12", Family: "linux", Kernel: "6.1.0-18-amd64"},
		CPU:      contracts.CPUInfo{Model: "Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz", Cores: 4},
		Memory:   contracts.MemoryInfo{Total: 8141484 * 1024},
		Disks:    debianDisks,
		Networks: fakeIfaces,
		Software: debianSoftware,
		Users:    []string{"alice", "bob"},
		Admins:   []string{"alice", "bob", "carol", "dave", "root", "toor"},
	}
	withUtmp := func(t *testing.T) string {
		root := fakeRoot(t, "debian")
		writeUtmp(t, filepath.Join(root, "var/run/utmp"),
			utmp(2, "reboot"), // BOOT_TIME
			utmp(6, "LOGIN"),  // LOGIN_PROCESS
			utmp(7, "alice"),
			utmp(7, "bob"),
			utmp(7, "alice"), // a second session
			utmp(8, "carol"), // DEAD_PROCESS: logged out
		)
		return root
	}

	tests := []struct {
		name       string
		root       func(t *testing.T) string
		run        map[string]any
		statfs     func(string) (uint64, uint64, error)
		want       contracts.Inventory
		wantFailed []string // sections of the *PartialError
		wantErr    error    // instead of a *PartialError
	}{{
		name:   "debian x86 with utmp",
		root:   withUtmp,
		run:    map[string]any{"who": "ignored 	pts/0	2024-01-01 10:00\n"},
		statfs: fakeStatfs(),
		want:   debian,
	}, {
		name:   "alpine arm container, who without utmp",
		root:   func(t *testing.T) string { return filepath.Join("testdata", "alpine-arm") },
		run:    map[string]any{"who": "alice    pts/0        2024-03-01 09:12 (10.0.0.2)\nalice    pts/1        2024-03-01 09:13\nroot     tty1         2024-03-01 08:00\n"},
		statfs: fakeStatfs(),
		want: contracts.Inventory{
			OS:     contracts.OSInfo{Name: "Alpine Linux", Version: "3.19.1", Family: "linux", Kernel: "6.6.12-0-lts"},
			CPU:    contracts.CPUInfo{Model: "ARM Cortex-A72", Cores: 4},
			Memory: contracts.MemoryInfo{Total: 3884360 * 1024},
			Disks: []contracts.Disk{
				disk("overlay", "/", "overlay"),
				disk("/dev/vdb", "/data", "ext4"),
			},
			Networks: fakeIfaces,
			Software: []contracts.Software{
				{Name: "busybox", Version: "1.36.1-r15", Source: "apk"},
				{Name: "ca-certificates-bundle", Version: "20240226-r0", Source: "apk"},
				{Name: "musl", Version: "1.2.4_git20230717-r4", Source: "apk"},
			},
			Users:  []string{"alice", "root"},
			Admins: []string{"alice", "root"},
		},
	}, {
		name: "fedora: rpm, uname, no meminfo, no who",
		root: func(t *testing.T) string { return filepath.Join("testdata", "fedora") },
		run: map[string]any{
			"uname -r": "6.7.5-200.fc39.x86_64\n",
			rpmQuery:   "kernel\t6.7.5-200.fc39\nbash\t5.2.26-1.fc39\ngpg-pubkey\t18b8e74c-62f2920f\nkernel\t6.7.4-200.fc39\nglibc\t2.38-16.fc39\nglibc\t2.38-16.fc39\n",
		},
		statfs: fakeStatfs(),
		want: contracts.Inventory{
			OS:       contracts.OSInfo{Name: "Fedora Linux", Version: "39", Family: "linux", Kernel: "6.7.5-200.fc39.x86_64"},
			CPU:      contracts.CPUInfo{Model: "AMD EPYC 7763 64-Core Processor", Cores: 2},
			Disks:    []contracts.Disk{disk("/dev/mapper/fedora-root", "/", "xfs")},
			Networks: fakeIfaces,
			Software: []contracts.Software{
				{Name: "bash", Version: "5.2.26-1.fc39", Source: "rpm"},
				{Name: "glibc", Version: "2.38-16.fc39", Source: "rpm"},
				{Name: "kernel", Version: "6.7.4-200.fc39", Source: "rpm"},
				{Name: "kernel", Version: "6.7.5-200.fc39", Source: "rpm"},
			},
			Users:  []string{},
			Admins: []string{"admin", "root"},
		},
		wantFailed: []string{contracts.InventorySectionMemory},
	}, {
		name: "debian: statfs and rpm fail, the rest is collected",
		root: withUtmp,
		run: map[string]any{
			rpmQuery: errors.New("exit status 1: error: cannot open Packages database"),
		},
		statfs: fakeStatfs("/boot"),
		want: func() contracts.Inventory {
			inv := debian
			inv.Disks = slices.Clone(debianDisks)
			inv.Disks[1].Total, inv.Disks[1].Free = 0, 0
			return inv
		}(),
		wantFailed: []string{contracts.InventorySectionDisks, contracts.InventorySectionSoftware},
	}, {
		name: "empty root",
		root: func(t *testing.T) string { return t.TempDir() },
		want: contracts.Inventory{
			OS:       contracts.OSInfo{Family: "linux"},
			Networks: []contracts.NetIface{},
			Software: []contracts.Software{},
			Users:    []string{},
			Admins:   []string{},
		},
		wantErr: ErrNothingCollected,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &Linux{
				Root:       tt.root(t),
				Run:        fakeRun(tt.run),
				Statfs:     tt.statfs,
				Interfaces: func() ([]contracts.NetIface, error) { return fakeIfaces, nil },
			}
			if tt.name == "empty root" {
				l.Interfaces = nil // not the host: none
			}
			got, err := l.Collect(context.Background())
			var partial *PartialError
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) || errors.As(err, &partial) {
					t.Fatalf("got error %v, want %v", err, tt.wantErr)
				}
			case tt.wantFailed == nil:
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
			default:
				if !errors.As(err, &partial) {
					t.Fatalf("got error %v, want a *PartialError", err)
				}
				if !slices.Equal(partial.Sections(), tt.wantFailed) {
					t.Errorf("got failed sections %q, want %q (%v)", partial.Sections(), tt.wantFailed, err)
				}
			}
			tt.want.Arch = runtimeArch()
			if g, w := jsonOf(t, got), jsonOf(t, tt.want); g != w {
				t.Errorf("got\n%s\nwant\n%s", g, w)
			}
		})
	}
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestLinuxCollectCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l := &Linux{Root: filepath.Join("testdata", "debian"), Run: fakeRun(nil)}
	if _, err := l.Collect(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got error %v, want context.Canceled", err)
	}
}

func TestParseCPUInfo(t *testing.T) {
	tests := []struct {
		name, cpuinfo string
		want          contracts.CPUInfo
	}{
		{"x86", "processor\t: 0\nmodel name\t: Intel(R) Core(TM) i7\n\nprocessor\t: 1\nmodel name\t: Intel(R) Core(TM) i7\n",
			contracts.CPUInfo{Model: "Intel(R) Core(TM) i7", Cores: 2}},
		{"arm64 implementer and known part", "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n",
			contracts.CPUInfo{Model: "ARM Neoverse-N1", Cores: 1}},
		{"arm64 other implementer", "processor\t: 0\nCPU implementer\t: 0x51\nCPU part\t: 0x801\n\nprocessor\t: 1\nCPU implementer\t: 0x51\nCPU part\t: 0x801\n",
			contracts.CPUInfo{Model: "Qualcomm part 0x801", Cores: 2}},
		{"arm64 unknown implementer", "processor\t: 0\nCPU implementer\t: 0x99\n",
			contracts.CPUInfo{Model: "implementer 0x99", Cores: 1}},
		{"arm32 model name and Hardware", "processor\t: 0\nmodel name\t: ARMv7 Processor rev 4 (v7l)\n\nHardware\t: BCM2835\nRevision\t: a02082\n",
			contracts.CPUInfo{Model: "ARMv7 Processor rev 4 (v7l)", Cores: 1}},
		{"arm Hardware only", "processor\t: 0\nBogoMIPS\t: 38.40\n\nHardware\t: BCM2835\n",
			contracts.CPUInfo{Model: "BCM2835", Cores: 1}},
		{"nothing known", "processor\t: 0\nBogoMIPS\t: 38.40\n",
			contracts.CPUInfo{Model: "unknown", Cores: 1}},
		{"power", "processor\t: 0\ncpu\t\t: POWER9 (architected), altivec supported\n\nprocessor\t: 1\ncpu\t\t: POWER9 (architected), altivec supported\n",
			contracts.CPUInfo{Model: "POWER9 (architected), altivec supported", Cores: 2}},
		{"risc-v", "processor\t: 0\nhart\t\t: 1\nisa\t\t: rv64imafdc\nmmu\t\t: sv39\nuarch\t\t: sifive,u74-mc\n",
			contracts.CPUInfo{Model: "sifive,u74-mc", Cores: 1}},
		{"s390x", "vendor_id       : IBM/S390\n# processors    : 4\nbogomips per cpu: 3241.00\nprocessor 0: version = FF, identification = 0133E8, machine = 2964\n",
			contracts.CPUInfo{Model: "unknown", Cores: 4}},
		{"empty", "", contracts.CPUInfo{Model: "unknown"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseCPUInfo([]byte(tt.cpuinfo)); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseOSRelease(t *testing.T) {
	got := parseOSRelease([]byte("# comment\nNAME=\"Debian \\\"GNU\\\"/Linux\"\nVERSION_ID='12'\nID=debian\nEMPTY=\nbroken line\n"))
	want := map[string]string{"NAME": `Debian "GNU"/Linux`, "VERSION_ID": "12", "ID": "debian", "EMPTY": ""}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParseMounts(t *testing.T) {
	tests := []struct {
		name, mounts string
		want         []string // device mount fstype
	}{
		{"escapes", `/dev/sda1 /mnt/a\040b\011c ext4 rw 0 0` + "\n" + `/dev/sda2 /mnt/back\134slash ext4 rw 0 0`,
			[]string{"/dev/sda1 /mnt/a b\tc ext4", `/dev/sda2 /mnt/back\slash ext4`}},
		{"overmounted by a disk", "/dev/sda1 /srv ext4 rw 0 0\n/dev/sdb1 /srv xfs rw 0 0\n",
			[]string{"/dev/sdb1 /srv xfs"}},
		{"overmounted by tmpfs", "/dev/sda1 /srv ext4 rw 0 0\ntmpfs /srv tmpfs rw 0 0\n", nil},
		{"overlay only as root", "overlay / overlay rw 0 0\noverlay /var/lib/docker/x/merged overlay rw 0 0\n",
			[]string{"overlay / overlay"}},
		{"pseudo and remote", "cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\nlxcfs /proc/cpuinfo fuse.lxcfs rw 0 0\n" +
			"srv:/x /mnt/x nfs rw 0 0\n/dev/loop1 /snap/x/1 squashfs ro 0 0\n/dev/sdc1 /mnt/ntfs fuseblk rw 0 0\nshort line\n",
			[]string{"/dev/sdc1 /mnt/ntfs fuseblk"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, d := range parseMounts([]byte(tt.mounts)) {
				got = append(got, d.Device+" "+d.Mount+" "+d.FSType)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestUsersUtmpUnreadable(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "var/run/utmp"), 0o755); err != nil { // a directory: not readable as a file
		t.Fatal(err)
	}
	l := &Linux{Root: root, Run: fakeRun(nil)}
	if _, err := l.users(context.Background()); err == nil {
		t.Fatal("got no error for an unreadable utmp without who, want one")
	}
	l.Run = fakeRun(map[string]any{"who": "zoe pts/3 2024-01-01 10:00\n"})
	got, err := l.users(context.Background())
	if err != nil || !slices.Equal(got, []string{"zoe"}) {
		t.Fatalf("got %q, %v, want [zoe] from who", got, err)
	}
}

// TestCollectHost runs the real collector on this machine.
func TestCollectHost(t *testing.T) {
	inv, err := New().Collect(context.Background())
	var partial *PartialError
	if errors.As(err, &partial) {
		t.Logf("collected in part: %q", partial.Warnings())
	} else if err != nil {
		t.Fatal(err)
	}
	t.Logf("os %+v, arch %s, cpu %+v, memory %d, %d disks, %d networks, %d packages, users %q, admins %q",
		inv.OS, inv.Arch, inv.CPU, inv.Memory.Total, len(inv.Disks), len(inv.Networks), len(inv.Software), inv.Users, inv.Admins)
	if inv.OS.Family != "linux" {
		t.Errorf("got os.family %q, want linux", inv.OS.Family)
	}
	if inv.OS.Kernel == "" {
		t.Error("got no kernel release")
	}
	if inv.CPU.Cores < 1 {
		t.Errorf("got %d cores, want at least 1", inv.CPU.Cores)
	}
	if inv.CPU.Model == "" {
		t.Error("got no CPU model")
	}
	if inv.Memory.Total == 0 {
		t.Error("got no memory")
	}
	if len(inv.Networks) == 0 {
		t.Error("got no network interface")
	}
	for _, d := range inv.Disks {
		if d.Free > d.Total {
			t.Errorf("disk %+v: want free <= total", d)
		}
	}
	if _, err := os.Stat("/var/lib/dpkg/status"); err == nil && len(inv.Software) == 0 {
		t.Error("got no software, but /var/lib/dpkg/status exists")
	}
	if !slices.Contains(inv.Admins, "root") {
		t.Errorf("got admins %q, want root among them", inv.Admins)
	}
}

func runtimeArch() string { return runtime.GOARCH }

// TestLinuxLoggedOnUsers reads utmp alone (what a consent prompt asks),
// the same users a whole collection reports.
func TestLinuxLoggedOnUsers(t *testing.T) {
	root := t.TempDir()
	writeUtmp(t, filepath.Join(root, "var/run/utmp"), utmp(utmpUserProcess, "dave"), utmp(8, "gone"), utmp(utmpUserProcess, "alice"))
	var l UserLister = &Linux{Root: root, Run: fakeRun(nil)}
	got, err := l.LoggedOnUsers(context.Background())
	if err != nil || !slices.Equal(got, []string{"alice", "dave"}) {
		t.Fatalf("logged-on users: got %v, %v; want [alice dave]", got, err)
	}
}
