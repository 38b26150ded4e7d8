package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
	"github.com/stewardhq/steward/services/internal/rpc"
)

// runInv runs `steward args...` with the inventory and collections
// commands: from the root when it has them, else on a root of their own
// with the global flags the tests use.
func (e *cliEnv) runInv(args ...string) (string, string, error) {
	e.t.Helper()
	var out, errb bytes.Buffer
	root := NewRoot(&out, &errb)
	if c, _, err := root.Find([]string{"collections"}); err != nil || c == root {
		g := &globals{stdout: &out, stderr: &errb, timeout: 10 * time.Second}
		root = &cobra.Command{Use: "steward", SilenceUsage: true, SilenceErrors: true}
		root.SetOut(&out)
		root.SetErr(&errb)
		pf := root.PersistentFlags()
		pf.StringVar(&g.server, "server", "", "")
		pf.StringVar(&g.identity, "identity", "", "")
		pf.StringVarP(&g.output, "output", "o", "table", "")
		pf.StringVar(&g.site, "site", "", "")
		pf.StringVar(&g.operator, "operator", "", "")
		pf.StringVar(&g.otlp, "otlp-endpoint", "", "")
		root.AddCommand(newInventoryCmd(g), newCollectionsCmd(g))
	}
	root.SetArgs(append(args, "--server", e.url, "--identity", e.identity, "--site", "LAB", "--operator", "admin", "--otlp-endpoint", ""))
	err := root.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

// report sends a full inventory report as client id's agent would.
func (e *cliEnv) report(id, itemID string, seq uint64, inv contracts.Inventory) {
	e.t.Helper()
	rep := contracts.InventoryReport{Header: contracts.NewHeader(contracts.TypeInventoryReport), Seq: seq, Full: true, Collected: time.Now().UTC(), Inventory: inv}
	data, _ := json.Marshal(rep)
	subj, _ := contracts.AgentUp("LAB", id, contracts.KindInventory)
	batch := contracts.OutboxBatch{Header: contracts.NewHeader(contracts.TypeOutboxBatch), Items: []contracts.OutboxItem{{ID: itemID, Type: contracts.TypeInventoryReport, Time: time.Now(), Data: data}}}
	natstest.Wait(e.t, 5*time.Second, "report of "+id+" stored", func() bool {
		var ack contracts.OutboxAck
		if err := rpc.Call(context.Background(), e.nc, subj, batch, &ack); err != nil {
			e.t.Fatalf("report: %v", err)
		}
		return slices.Equal(ack.Stored, []string{itemID})
	})
}

func linuxInventory(pkgs ...string) contracts.Inventory {
	inv := contracts.Inventory{
		OS:       contracts.OSInfo{Name: "Debian GNU/Linux", Version: "12", Family: "linux", Kernel: "6.1.0"},
		Arch:     "amd64",
		CPU:      contracts.CPUInfo{Model: "EPYC", Cores: 4},
		Memory:   contracts.MemoryInfo{Total: 8 << 30},
		Disks:    []contracts.Disk{{Device: "/dev/sda1", Mount: "/", FSType: "ext4", Total: 100 << 30, Free: 40 << 30}},
		Networks: []contracts.NetIface{{Name: "eth0", MAC: "52:54:00:00:00:01", Addrs: []string{"10.1.0.5/24"}}},
		Users:    []string{"alice"},
		Admins:   []string{"root"},
		Labels:   map[string]string{"role": "web"},
	}
	for _, p := range pkgs {
		name, version, _ := strings.Cut(p, "=")
		inv.Software = append(inv.Software, contracts.Software{Name: name, Version: version, Source: "dpkg"})
	}
	return inv
}

func TestInventoryCommands(t *testing.T) {
	e := newCLIEnv(t)
	e.enroll(contracts.ClientEnrolled, contracts.Client{ID: "id-1", Name: "web-01", OS: "linux"})
	e.report("id-1", "r1", 1, linuxInventory("openssl=3.0.11", "nginx=1.22.1"))
	// The report is taken once the record is stored; names are looked up
	// in discovery's view, which follows the store.
	natstest.Wait(t, 5*time.Second, "web-01 known by name", func() bool { _, err := e.run("clients", "show", "web-01"); return err == nil })

	out, _, err := e.runInv("inventory", "show", "web-01")
	if err != nil {
		t.Fatalf("show: %v", err)
	}
	for _, want := range []string{"Debian GNU/Linux 12", "8.0 GiB", "/dev/sda1", "10.1.0.5/24", "SOFTWARE (2)", "openssl", "3.0.11", "role=web"} {
		if !strings.Contains(out, want) {
			t.Errorf("show: no %q in\n%s", want, out)
		}
	}
	out, _, err = e.runInv("inventory", "show", "id-1", "-o", "json")
	var v inventoryView
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v.Client.ID != "id-1" || len(v.Inventory.Software) != 2 || v.Seq != 1 {
		t.Errorf("show -o json: got %s, %v", out, err)
	}

	e.report("id-1", "r2", 2, linuxInventory("openssl=3.0.13", "nginx=1.22.1"))
	out, _, err = e.runInv("inventory", "history", "web-01", "-o", "json")
	var changes []contracts.InventoryChange
	if err != nil || json.Unmarshal([]byte(out), &changes) != nil || len(changes) != 2 || changes[1].Item != "openssl" || changes[1].To != "3.0.13" {
		t.Errorf("history -o json: got %s, %v", out, err)
	}
	out, _, err = e.runInv("inventory", "history", "web-01", "--since", "1h")
	if err != nil || !strings.Contains(out, "SECTION") || !strings.Contains(out, "3.0.11") {
		t.Errorf("history: got %q, %v", out, err)
	}
	if _, _, err := e.runInv("inventory", "history", "web-01", "--since", "yesterday"); err == nil || !strings.Contains(err.Error(), "RFC 3339") {
		t.Errorf("bad --since: got %v", err)
	}
	if _, _, err := e.runInv("inventory", "history", "web-01", "--since", "1d"); err != nil {
		t.Errorf("--since 1d, as status list takes it: %v", err)
	}

	down, _ := contracts.AgentDown("LAB", "id-1", contracts.KindInventoryRefresh)
	sub, err := e.nc.SubscribeSync(down)
	if err != nil {
		t.Fatal(err)
	}
	_ = e.nc.Flush()
	out, _, err = e.runInv("inventory", "refresh", "web-01")
	if err != nil || !strings.Contains(out, "asked web-01") {
		t.Errorf("refresh: got %q, %v", out, err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Errorf("refresh: nothing on %s: %v", down, err)
	}
	if _, _, err := e.runInv("inventory", "show", "nope"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Errorf("show nope: got %v, want not_found", err)
	}
}

func TestCollectionsCommands(t *testing.T) {
	e := newCLIEnv(t)
	e.enroll(contracts.ClientEnrolled, contracts.Client{ID: "id-1", Name: "web-01", OS: "linux"})
	e.enroll(contracts.ClientEnrolled, contracts.Client{ID: "id-2", Name: "db-01", OS: "linux"})
	e.enroll(contracts.ClientEnrolled, contracts.Client{ID: "id-3", Name: "web-02", OS: "windows"})
	e.report("id-1", "r1", 1, linuxInventory("openssl=3.0.11"))
	e.report("id-2", "r2", 1, linuxInventory("postgresql=15"))

	members := func(name string) []contracts.Named {
		t.Helper()
		out, _, err := e.runInv("collections", "members", name, "-o", "json")
		var m []contracts.Named
		if err != nil || json.Unmarshal([]byte(out), &m) != nil {
			t.Fatalf("members %s -o json: got %q, %v", name, out, err)
		}
		return m
	}
	names := func(m []contracts.Named) string {
		var n []string
		for _, x := range m {
			n = append(n, x.Name)
		}
		return strings.Join(n, ",")
	}

	query := `os.family == "linux" && name startsWith "web-"`
	out, _, err := e.runInv("collections", "preview", "--query", query, "-o", "json")
	if err != nil || strings.TrimSpace(out) != `[
  {
    "id": "id-1",
    "name": "web-01"
  }
]` {
		t.Errorf("preview -o json: got %s, %v", out, err)
	}
	if out, _, err = e.runInv("collections", "create", "Linux web", "--query", query); err != nil || !strings.Contains(out, "Members:") {
		t.Fatalf("create: %q, %v", out, err)
	}
	if got := members("Linux web"); names(got) != "web-01" || got[0].ID != "id-1" {
		t.Errorf("members of Linux web: got %v", got)
	}

	// An empty collection prints [].
	if _, _, err := e.runInv("collections", "create", "Pilot"); err != nil {
		t.Fatal(err)
	}
	out, _, err = e.runInv("collections", "members", "Pilot", "-o", "json")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Errorf("members of an empty collection: got %q, %v; want []", out, err)
	}
	if _, _, err := e.runInv("collections", "add", "Pilot", "db-01", "web-02"); err != nil {
		t.Fatalf("add: %v", err)
	}
	if _, _, err := e.runInv("collections", "create", "Servers", "--query", `name startsWith "db-"`); err != nil {
		t.Fatal(err)
	}
	out, _, err = e.runInv("collections", "update", "Pilot", "--include", "Linux web", "--exclude", "Servers")
	if err != nil || !strings.Contains(out, "Linux web (") || !strings.Contains(out, "Servers (") {
		t.Fatalf("update: %q, %v", out, err)
	}
	if got := names(members("Pilot")); got != "web-01,web-02" {
		t.Errorf("members of Pilot: got %s, want web-01,web-02", got)
	}

	// Incremental: db-01 gets openssl... no; web-01 drops to windows.
	inv := linuxInventory("openssl=3.0.11")
	inv.OS.Family = "windows"
	e.report("id-1", "r3", 2, inv)
	natstest.Wait(t, time.Second, "web-01 out of Linux web within 1s", func() bool { return names(members("Linux web")) == "" })
	if got := names(members("Pilot")); got != "web-02" {
		t.Errorf("members of Pilot after the change: got %s, want web-02", got)
	}

	out, _, err = e.runInv("collections", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 5 || !strings.HasPrefix(lines[1], "All Systems") || !strings.Contains(lines[1], "built in") || !strings.Contains(out, "1 include, 1 exclude, 2 direct members") {
		t.Errorf("list:\n%s\n%v", out, err)
	}
	out, _, err = e.runInv("collections", "list", "-o", "json")
	var list []contracts.CollectionInfo
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 4 || list[0].MemberCount != 3 {
		t.Errorf("list -o json: %s, %v", out, err)
	}
	out, _, err = e.runInv("collections", "show", "Linux web", "-o", "json")
	var info contracts.CollectionInfo
	if err != nil || json.Unmarshal([]byte(out), &info) != nil || info.Queries[0] != query || info.Limit.Name != contracts.AllSystemsName {
		t.Errorf("show -o json: %s, %v", out, err)
	}

	// Bad input reaches the operator with its reason.
	_, _, err = e.runInv("collections", "create", "Bad", "--query", `os.family == "linux" && nme startsWith "web-"`)
	if err == nil || !strings.Contains(err.Error(), "line 1, column 25: unknown name nme") || !strings.Contains(err.Error(), "^") {
		t.Errorf("bad query: got %v", err)
	}
	if _, _, err = e.runInv("collections", "update", "Pilot", "--limit", "Pilot"); err == nil || !strings.Contains(err.Error(), "limited by itself") {
		t.Errorf("limited by itself: got %v", err)
	}
	if _, _, err = e.runInv("collections", "delete", "Servers"); contracts.CodeOf(err) != contracts.CodeConflict || !strings.Contains(err.Error(), `"Pilot" (excludes it)`) {
		t.Errorf("delete a dependency: got %v", err)
	}
	if _, _, err = e.runInv("collections", "update", "Pilot", "--query", "x", "--clear-queries"); err == nil {
		t.Error("--query with --clear-queries: no error")
	}
	if _, _, err = e.runInv("collections", "add", "Pilot"); err == nil {
		t.Error("add without a client: no error")
	}
	if _, _, err := e.runInv("collections", "remove", "Pilot", "web-02"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.runInv("collections", "update", "Pilot", "--remove-exclude", "Servers"); err != nil {
		t.Fatal(err)
	}
	out, _, err = e.runInv("collections", "delete", "Servers")
	if err != nil || !strings.Contains(out, "deleted collection Servers") {
		t.Errorf("delete: %q, %v", out, err)
	}
	out, _, _ = e.runInv("collections", "members", "Pilot")
	if !strings.HasPrefix(out, "NAME") || !strings.Contains(out, "db-01") || strings.Contains(out, "web-02") {
		t.Errorf("members table:\n%s", out)
	}
}
