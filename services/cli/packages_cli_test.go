package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
	"github.com/stewardhq/steward/services/internal/natstest"
	"github.com/stewardhq/steward/services/replication"
	"github.com/stewardhq/steward/services/site"
)

// newPackagesEnv is newCLIEnv with the site's replication service running
// (without authorization). peers are the sites linked to LAB: a child
// listed there that runs nowhere is a site that is gone.
func newPackagesEnv(t *testing.T, peers replication.StaticPeers) (*cliEnv, *replication.Service) {
	t.Helper()
	e := newCLIEnv(t)
	connect := func(opts ...nats.Option) *nats.Conn {
		nc, err := nats.Connect(e.url, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	inbox, _ := contracts.SiteInbox("LAB")
	kp, _ := nkeys.CreateServer()
	svc, err := replication.New(context.Background(), replication.Config{
		NC: connect(), SiteNC: connect(nats.CustomInboxPrefix(inbox)), Site: "LAB", SiteKey: kp, NoAuthz: true,
		Peers: peers, Log: discardLog(), RetryBase: 50 * time.Millisecond, RetryMax: 400 * time.Millisecond, PruneEvery: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	natstest.RunService(t, svc)
	return e, svc
}

// writeFiles makes n small files under a new directory and returns it.
func writeFiles(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("file-%05d.txt", i)), fmt.Appendf(nil, "file %d\n", i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestPackagesCreateWaitsForTheSite: the create's last request waits
// --timeout plus the time the site takes to read the version back (a
// second per 32 MiB), not --timeout alone; when even that passes, the
// error says the site may still finish and how to see whether it did.
func TestPackagesCreateWaitsForTheSite(t *testing.T) {
	big := &client.PackageSource{Size: 2500 << 20} // the 2.5 GB the site took 30 s over
	if got, want := createWait(10*time.Second, big), 10*time.Second+78*time.Second; got < want {
		t.Fatalf("create of 2.5 GB waits %s, want at least %s", got, want)
	}

	// A site that takes every chunk and never answers the create.
	e := newCLIEnv(t)
	chunks, _ := contracts.OpUp("LAB", "admin", contracts.KindPackagesChunks)
	create, _ := contracts.OpUp("LAB", "admin", contracts.KindPackagesCreate)
	sub, err := e.nc.Subscribe(chunks, func(m *nats.Msg) {
		b, _ := json.Marshal(contracts.PackageChunksResponse{Header: contracts.NewHeader(contracts.TypePackageChunksResponse), Missing: []string{}})
		_ = m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	asked := make(chan struct{}, 1)
	sub2, err := e.nc.Subscribe(create, func(*nats.Msg) { asked <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Unsubscribe()
	_, err = e.run("packages", "create", "tools", "--version", "1.0", "--source", writeFiles(t, 2), "--timeout", "1s")
	select {
	case <-asked:
	default:
		t.Fatalf("create was never asked: %v", err)
	}
	if err == nil || !strings.Contains(err.Error(), "may still be storing and signing it") ||
		!strings.Contains(err.Error(), "steward packages show tools --version 1.0") || strings.Contains(err.Error(), "is `steward serve` running") {
		t.Fatalf("create without an answer: %v; want it to say the site may still finish, and how to check", err)
	}
}

// TestPackagesCreateManifestLimit: a directory whose manifest would not
// fit one message (5,000 small files) is refused before anything is
// uploaded (here no site even runs), naming the cause and the fix.
func TestPackagesCreateManifestLimit(t *testing.T) {
	run := func(dir string) error {
		var out, errb bytes.Buffer
		root := NewRoot(&out, &errb)
		root.SetArgs([]string{"packages", "create", "tools", "--version", "1.0", "--source", dir, "--server", "nats://127.0.0.1:1", "--otlp-endpoint", ""})
		return root.ExecuteContext(context.Background())
	}
	err := run(writeFiles(t, 5000))
	if err == nil || !strings.Contains(err.Error(), "too many files and paths for one manifest") || !strings.Contains(err.Error(), "over the 737280") ||
		!strings.Contains(err.Error(), "split it into several packages") {
		t.Fatalf("5,000 small files: %v; want the manifest's size refused before the upload", err)
	}
}

// TestRoutesSetKeepsWhatIsNotGiven: routes set changes only what its
// flags say; "unlimited" and "always" clear the rate and the schedule.
func TestRoutesSetKeepsWhatIsNotGiven(t *testing.T) {
	e, _ := newPackagesEnv(t, replication.StaticPeers{})
	route := func(args ...string) contracts.RouteInfo {
		t.Helper()
		out, err := e.run(append([]string{"routes", "set", "CHD", "-o", "json"}, args...)...)
		if err != nil {
			t.Fatalf("routes set %s: %v", strings.Join(args, " "), err)
		}
		var rs []contracts.RouteInfo
		if err := json.Unmarshal([]byte(out), &rs); err != nil || len(rs) != 1 {
			t.Fatalf("routes set %s: %q, %v", strings.Join(args, " "), out, err)
		}
		return rs[0]
	}
	if r := route("--rate", "20MB/s", "--schedule", "Mon-Fri 18:00-06:00"); r.Rate != 20e6 || r.Schedule != "Mon-Fri 18:00-06:00" {
		t.Fatalf("both set: %+v", r)
	}
	if r := route("--schedule", "Sat,Sun 00:00-24:00"); r.Rate != 20e6 || r.Schedule != "Sat-Sun 00:00-24:00" {
		t.Fatalf("--schedule alone: %+v; want the rate kept", r)
	}
	if r := route("--rate", "30MB/s"); r.Rate != 30e6 || r.Schedule != "Sat-Sun 00:00-24:00" {
		t.Fatalf("--rate alone: %+v; want the schedule kept", r)
	}
	if r := route("--rate", "unlimited"); r.Rate != 0 || r.Schedule != "Sat-Sun 00:00-24:00" {
		t.Fatalf("--rate unlimited: %+v; want no limit, the schedule kept", r)
	}
	if r := route("--rate", "1MB/s", "--schedule", "always"); r.Rate != 1e6 || r.Schedule != "" {
		t.Fatalf("--schedule always: %+v; want any time", r)
	}
	if _, err := e.run("routes", "set", "CHD"); err == nil || !strings.Contains(err.Error(), "say what to set") {
		t.Fatalf("routes set without flags: %v", err)
	}
	if _, err := e.run("routes", "set", "CHD", "--rate", "99999999999999GB/s"); err == nil || !strings.Contains(err.Error(), "too large") {
		t.Fatalf("an overflowing rate: %v; want too large", err)
	}
}

// runOwnSite runs `steward args...` as e.run does but without the global
// --site, which distribute's own --site would take as a destination (the
// identity file says the site).
func (e *cliEnv) runOwnSite(args ...string) (string, error) {
	e.t.Helper()
	var out, errb bytes.Buffer
	root := NewRoot(&out, &errb)
	root.SetArgs(append(args, "--server", e.url, "--identity", e.identity, "--otlp-endpoint", ""))
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// TestPackagesDistributeCancel: a distribution to a site that is gone is
// retried until `packages distribute --cancel` deletes it; then nothing is
// queued for the site any more.
func TestPackagesDistributeCancel(t *testing.T) {
	e, svc := newPackagesEnv(t, replication.StaticPeers{"CH2": {Site: "CH2", Role: contracts.PeerChild, SigningKey: "OGONE"}})
	if out, err := e.run("packages", "create", "tools", "--version", "1.0", "--source", writeFiles(t, 3)); err != nil || !strings.Contains(out, "created tools 1.0") {
		t.Fatalf("create: %q, %v", out, err)
	}
	// The global --site LAB (e.run gives it) is one more destination here.
	if _, err := e.run("packages", "distribute", "tools", "--site", "CH2"); err == nil || !strings.Contains(err.Error(), "--site LAB is the site this command talks to") {
		t.Fatalf("distribute with the global --site: %v; want it named as no destination", err)
	}
	if _, err := e.runOwnSite("packages", "distribute", "tools", "--site", "CH2"); err != nil {
		t.Fatal(err)
	}
	natstest.Wait(t, 15*time.Second, "the job to CH2 to fail and wait to be retried", func() bool {
		j := svc.Jobs("tools", "1.0")
		return len(j) == 1 && j[0].Attempts >= 2
	})
	if r := svc.Route("CH2"); r.Backlog == 0 {
		t.Fatalf("route to CH2 %+v: want a backlog", r)
	}
	out, err := e.runOwnSite("packages", "distribute", "tools", "--site", "CH2", "--cancel")
	if err != nil || !strings.Contains(out, "cancelled sending tools 1.0 to CH2 (was sending") {
		t.Fatalf("cancel: %q, %v", out, err)
	}
	out, err = e.run("packages", "status", "tools", "-o", "json")
	var st contracts.PackageStatusResponse
	if err != nil || json.Unmarshal([]byte(out), &st) != nil || len(st.Sites) != 0 {
		t.Fatalf("status after the cancel: %q, %v; want no site", out, err)
	}
	out, err = e.run("routes", "list", "-o", "json")
	var routes []contracts.RouteInfo
	if err != nil || json.Unmarshal([]byte(out), &routes) != nil || len(routes) != 0 {
		t.Fatalf("routes after the cancel: %q, %v; want none (nothing queued, no route set)", out, err)
	}
	if _, err := e.runOwnSite("packages", "distribute", "tools@1.0", "--site", "CH2", "--cancel", "-o", "json"); contracts.CodeOf(err) != contracts.CodeNotFound ||
		!strings.Contains(err.Error(), "tools@1.0 is not being sent to CH2") {
		t.Fatalf("a second cancel: %v; want not found", err)
	}
}

// TestPackagesRefs: list takes NAME@VERSION, and refuses what is no
// package name; delete names what is missing without a stray "@" and
// says that --version and --all exclude each other.
func TestPackagesRefs(t *testing.T) {
	e, _ := newPackagesEnv(t, replication.StaticPeers{})
	if _, err := e.run("packages", "create", "tools", "--version", "1.0", "--source", writeFiles(t, 1)); err != nil {
		t.Fatal(err)
	}
	out, err := e.run("packages", "list", "tools@1.0", "-o", "json")
	var list []contracts.PackageInfo
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].Version != "1.0" {
		t.Fatalf("list tools@1.0: %q, %v", out, err)
	}
	if _, err := e.run("packages", "list", "tools@2.0"); err == nil || !strings.Contains(err.Error(), "no package tools@2.0") {
		t.Fatalf("list tools@2.0: %v; want no such version", err)
	}
	if _, err := e.run("packages", "list", "a.b"); err == nil || !strings.Contains(err.Error(), `package name "a.b"`) {
		t.Fatalf("list a.b: %v; want a bad package name", err)
	}
	if _, err := e.run("packages", "delete", "nonexist", "--all"); err == nil || !strings.Contains(err.Error(), "no package nonexist ") {
		t.Fatalf("delete nonexist --all: %v; want no package nonexist", err)
	}
	for _, args := range [][]string{{"tools", "--all", "--version", "1.0"}, {"tools@1.0", "--all"}} {
		if _, err := e.run(append([]string{"packages", "delete"}, args...)...); err == nil || !strings.Contains(err.Error(), "exclude each other") {
			t.Fatalf("delete %s: %v; want --version and --all refused together", strings.Join(args, " "), err)
		}
	}
}

// TestDistributeSiteFromIdentityOrEnv: distribute's own --site hides the
// global one, so with a bare identity the error says how the site can be
// given instead.
func TestDistributeSiteFromIdentityOrEnv(t *testing.T) {
	t.Setenv("STEWARD_SITE", "")
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	bare := filepath.Join(t.TempDir(), "bare.nk")
	if err := client.WriteIdentity(bare, client.Identity{Seed: seed}); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	root := NewRoot(&out, &errb)
	root.SetArgs([]string{"--identity", bare, "--operator", "admin", "--site", "PAR", "packages", "distribute", "tools", "--site", "CHD",
		"--server", "nats://127.0.0.1:1", "--otlp-endpoint", ""})
	err := root.ExecuteContext(context.Background())
	if err == nil || !strings.Contains(err.Error(), "STEWARD_SITE") || !strings.Contains(err.Error(), "# site: CODE") {
		t.Fatalf("distribute with a bare identity: %v; want STEWARD_SITE or the identity's site line suggested", err)
	}
}

// TestSitesTokenListJSONState: -o json carries each token's state, as the
// table's STATE column shows it, and the child it is for (neither showed
// the --child restriction).
func TestSitesTokenListJSONState(t *testing.T) {
	s, err := site.New(context.Background(), site.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:-1", Site: "PAR", SiteSet: true, Services: []string{"admin", "status"}, Log: discardLog()}) // status: the site's stopping message has somewhere to go
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	run := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		root := NewRoot(&out, &errb)
		root.SetArgs(append(args, "--server", s.URL(), "--identity", s.AdminIdentity(), "--otlp-endpoint", ""))
		err := root.ExecuteContext(context.Background())
		return out.String(), err
	}
	natstest.Wait(t, 15*time.Second, "the admin service", func() bool {
		_, err := run("sites", "token", "create", "--child", "BR1")
		return err == nil
	})
	out, err := run("sites", "token", "list", "-o", "json")
	var rows []struct {
		ID    string `json:"id"`
		State string `json:"state"`
		Child string `json:"child"`
	}
	if err != nil || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 || rows[0].State != "valid" || rows[0].Child != "BR1" {
		t.Fatalf("sites token list -o json: %q, %v; want one valid token for BR1 with its state", out, err)
	}
	if out, err := run("sites", "token", "list"); err != nil || !strings.Contains(out, "CHILD") || !strings.Contains(out, "BR1") {
		t.Fatalf("sites token list: %q, %v; want a CHILD column saying BR1", out, err)
	}
}
