package integration

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
	"github.com/stewardhq/steward/services/site"
)

// startLinkedSites runs a parent site PAR with a leaf listener and a child
// site CHD linked to it with a one-time site token, and waits until each
// has pinned the other.
func startLinkedSites(t *testing.T) (parent, child *runningSite) {
	t.Helper()
	leaf := freePort(t)
	parent = startSiteConfig(t, site.Config{DataDir: t.TempDir(), Listen: freePort(t), Site: "PAR", SiteSet: true, LeafListen: leaf})
	op := parent.operator(t)
	tok, _, err := op.SitesTokenCreate(ctx(t), time.Hour, "CHD", "integration")
	if err != nil {
		t.Fatal(err)
	}
	child = startSiteConfig(t, site.Config{DataDir: t.TempDir(), Listen: freePort(t), Site: "CHD", SiteSet: true, Parent: "nats://" + leaf, ParentToken: tok})
	cop := child.operator(t)
	wait(t, 15*time.Second, "the sites to pin each other", func() bool {
		p, err1 := op.SitesList(ctx(t))
		c, err2 := cop.SitesList(ctx(t))
		return err1 == nil && err2 == nil && len(p) == 1 && len(c) == 1 &&
			p[0].Site == "CHD" && p[0].SigningKey != "" && p[0].Connected && c[0].Site == "PAR" && c[0].Role == contracts.PeerParent
	})
	return parent, child
}

// startSiteConfig is startSite with a whole config.
func startSiteConfig(t *testing.T, cfg site.Config) *runningSite {
	t.Helper()
	cfg.Log = testLog(t)
	s, err := site.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start site %s: %v", cfg.Site, err)
	}
	c, cancel := context.WithCancel(context.Background())
	rs := &runningSite{Site: s, dir: cfg.DataDir, listen: cfg.Listen, cancel: cancel, done: make(chan error, 1)}
	go func() { rs.done <- s.Run(c) }()
	t.Cleanup(rs.stop)
	rs.waitServices(t)
	return rs
}

// createPackage makes version of package name from dir at the site of op.
func createPackage(t *testing.T, op *client.Client, name, version, dir string) contracts.PackageInfo {
	t.Helper()
	src, err := client.ScanPackage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := op.PackageUpload(ctx(t), src, nil); err != nil {
		t.Fatalf("upload: %v", err)
	}
	info, err := op.PackageCreate(ctx(t), name, version, src)
	if err != nil {
		t.Fatalf("create %s %s: %v", name, version, err)
	}
	return info
}

// waitInstalledAt waits until the version is installed at site dest, as
// the sender of op's site reports it.
func waitInstalledAt(t *testing.T, op *client.Client, name, version, dest string) contracts.PackageSiteStatus {
	t.Helper()
	var st contracts.PackageSiteStatus
	wait(t, 30*time.Second, name+" "+version+" installed at "+dest, func() bool {
		resp, err := op.PackageStatus(ctx(t), name, version)
		if err != nil || len(resp.Sites) != 1 {
			return false
		}
		st = resp.Sites[0]
		if st.State == contracts.ContentFailed {
			t.Fatalf("distribution to %s failed: %s", dest, st.Error)
		}
		return st.State == contracts.ContentInstalled
	})
	return st
}

// TestReplicationParentChildAgent: a package made at the parent reaches the
// child site over the leaf connection, verified, and from there a real
// agent of the child, which installs it under its state dir. A second
// version that shares most chunks moves only the new ones.
func TestReplicationParentChildAgent(t *testing.T) {
	parent, child := startLinkedSites(t)
	op, cop := parent.operator(t), child.operator(t)

	src := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), 3*contracts.ChunkSize/16) // 3 chunks
	tool := []byte("#!/bin/sh\necho tool\n")
	must(t, os.MkdirAll(filepath.Join(src, "bin"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "bin", "tool"), tool, 0o755))
	must(t, os.WriteFile(filepath.Join(src, "data.bin"), big, 0o644))
	must(t, os.Symlink("bin/tool", filepath.Join(src, "t")))
	v1 := createPackage(t, op, "tools", "1.0", src)

	// Not at the child until distributed.
	if list, err := cop.PackageList(ctx(t), "tools"); err != nil || len(list) != 0 {
		t.Fatalf("child library before distribution = %v, %v; want empty", list, err)
	}
	if _, err := op.PackageDistribute(ctx(t), "tools", "1.0", []string{"CHD"}); err != nil {
		t.Fatal(err)
	}
	st := waitInstalledAt(t, op, "tools", "1.0", "CHD")
	if st.Verified != v1.Digest {
		t.Fatalf("the child verified digest %q, want %q", st.Verified, v1.Digest)
	}
	list, err := cop.PackageList(ctx(t), "tools")
	if err != nil || len(list) != 1 || list[0].Digest != v1.Digest || list[0].Site != "PAR" || list[0].From != "PAR" {
		t.Fatalf("child library = %+v, %v; want tools 1.0 from PAR", list, err)
	}
	routes, err := op.RouteList(ctx(t))
	if err != nil || len(routes) != 1 || routes[0].Site != "CHD" || routes[0].Backlog != 0 || !routes[0].Open {
		t.Fatalf("routes after the distribution = %+v, %v; want CHD open with nothing queued", routes, err)
	}
	if _, err := op.RouteSet(ctx(t), "CHD", 20<<20, "Mon-Fri 25:00-06:00"); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Fatalf("a schedule at 25:00 = %v, want bad_request", err)
	}
	if routes, err := op.RouteSet(ctx(t), "CHD", 20<<20, "Mon-Fri 18:00-06:00"); err != nil || len(routes) != 1 || routes[0].Rate != 20<<20 || routes[0].Schedule == "" {
		t.Fatalf("route set = %+v, %v", routes, err)
	}
	if routes, err := op.RouteDelete(ctx(t), "CHD"); err != nil || len(routes) != 1 || routes[0].Rate != 0 || routes[0].Schedule != "" { // back to unlimited, always
		t.Fatalf("route delete = %+v, %v; want the default route", routes, err)
	}
	if _, err := op.RouteDelete(ctx(t), "CHD"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("deleting a route never set = %v, want not_found", err)
	}
	// Content flows down only: the child cannot send to its parent.
	if _, err := cop.PackageDistribute(ctx(t), "tools", "1.0", []string{"PAR"}); err == nil {
		t.Fatal("a child distributed to its parent")
	}

	// A real agent of the child downloads it once deployed to its collection.
	adir := t.TempDir()
	ra := startAgent(t, child.URL(), child.token(t, 1, time.Hour), adir, "web-01")
	wait(t, 15*time.Second, "the agent to enroll", func() bool { return ra.ClientID() != "" })
	waitOnline(t, cop, ra.ClientID(), true)
	dep, err := cop.PackageDeploy(ctx(t), "tools", "", contracts.AllSystemsName, true)
	if err != nil {
		t.Fatal(err)
	}
	if dep.Deployment.Version != "1.0" {
		t.Fatalf("deployed %+v, want the newest version 1.0", dep.Deployment)
	}
	if _, err := cop.PackageDeploy(ctx(t), "tools", "", "No such collection", true); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("deploy to an unknown collection = %v, want not_found", err)
	}
	if _, err := cop.PackageDelete(ctx(t), "tools", "1.0"); contracts.CodeOf(err) != contracts.CodeConflict {
		t.Fatalf("deleting a deployed version = %v, want conflict", err)
	}
	installed := filepath.Join(adir, "content", "tools", "1.0")
	wait(t, 30*time.Second, "the agent to install tools 1.0", func() bool {
		b, err := os.ReadFile(filepath.Join(installed, "data.bin"))
		return err == nil && bytes.Equal(b, big)
	})
	if b, err := os.ReadFile(filepath.Join(installed, "bin", "tool")); err != nil || !bytes.Equal(b, tool) {
		t.Fatalf("bin/tool = %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(installed, "bin", "tool")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("bin/tool mode = %v, %v; want 0755", fi, err)
	}
	if target, err := os.Readlink(filepath.Join(installed, "t")); err != nil || target != "bin/tool" {
		t.Fatalf("link t = %q, %v", target, err)
	}
	wait(t, 15*time.Second, "the child to know the client installed it", func() bool {
		resp, err := cop.PackageStatus(ctx(t), "tools", "1.0")
		return err == nil && len(resp.Clients) == 1 && resp.Clients[0].State == contracts.ContentInstalled && resp.Clients[0].Client.Name == "web-01"
	})

	// Version 2 changes one small file: only its chunk crosses the link.
	must(t, os.WriteFile(filepath.Join(src, "bin", "tool"), []byte("#!/bin/sh\necho tool 2\n"), 0o755))
	v2 := createPackage(t, op, "tools", "2.0", src)
	if _, err := op.PackageDistribute(ctx(t), "tools", "2.0", []string{"CHD"}); err != nil {
		t.Fatal(err)
	}
	st2 := waitInstalledAt(t, op, "tools", "2.0", "CHD")
	if st2.Verified != v2.Digest || st2.Bytes >= int64(contracts.ChunkSize) || st2.ChunksTotal != 1 {
		t.Fatalf("version 2 moved %d bytes in %d chunks; want only the changed file's one chunk", st2.Bytes, st2.ChunksTotal)
	}
}

// TestReplicationRefusedWithoutPermission: a Read-only Analyst may list
// packages but not create, distribute or deploy them.
func TestReplicationRefusedWithoutPermission(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "S1")
	admin := rs.operator(t)
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "a"), []byte("a"), 0o644))
	createPackage(t, admin, "tools", "1", src)

	ro := rs.addOperator(t, admin, "reader", []string{contracts.RoleReadOnlyAnalyst}, []string{contracts.AllSystemsName})
	if list, err := ro.PackageList(ctx(t), ""); err != nil || len(list) != 1 {
		t.Fatalf("reader's list = %v, %v; want the one version", list, err)
	}
	s, err := client.ScanPackage(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := ro.PutChunk(ctx(t), contracts.ChunkHash([]byte("x")), []byte("x")); contracts.CodeOf(err) != contracts.CodePermissionDenied {
		t.Fatalf("reader put a chunk: %v, want permission_denied", err)
	}
	if _, err := ro.PackageCreate(ctx(t), "tools", "2", s); contracts.CodeOf(err) != contracts.CodePermissionDenied {
		t.Fatalf("reader created a version: %v, want permission_denied", err)
	}
	if _, err := ro.PackageDeploy(ctx(t), "tools", "1", contracts.AllSystemsName, true); contracts.CodeOf(err) != contracts.CodePermissionDenied {
		t.Fatalf("reader deployed: %v, want permission_denied", err)
	}
	if _, err := ro.PackageDelete(ctx(t), "tools", "1"); contracts.CodeOf(err) != contracts.CodePermissionDenied {
		t.Fatalf("reader deleted: %v, want permission_denied", err)
	}
	// An operator's chunk must be what its hash says.
	if err := admin.PutChunk(ctx(t), contracts.ChunkHash([]byte("x")), []byte("y")); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Fatalf("a chunk under another hash: %v, want bad_request", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestReplicationQuarantine: an offer over the leaf link whose manifest is
// not signed by the key the child pinned for its parent is quarantined at
// the child, answered with an error, never installed, and shown to the
// child's operator until deleted.
func TestReplicationQuarantine(t *testing.T) {
	parent, child := startLinkedSites(t)
	cop := child.operator(t)
	inbox, _ := contracts.SiteInbox("PAR")
	nc := connectWithSeedFile(t, parent.URL(), filepath.Join(parent.dir, "keys", "service.nk"), inbox)
	defer nc.Close()

	h := contracts.ChunkHash([]byte("evil"))
	m := contracts.Manifest{
		Header: contracts.NewHeader(contracts.TypeManifest), Site: "PAR", Package: "evil", Version: "1", ChunkSize: contracts.ChunkSize, Size: 4,
		Files: []contracts.ManifestFile{{Path: "bin/sh", Mode: 0o755, Size: 4, SHA256: h, Chunks: []string{h}}},
	}
	body, _ := json.Marshal(m)
	_, wrong, _ := ed25519.GenerateKey(nil)
	offer := contracts.ReplicationOffer{Header: contracts.NewHeader(contracts.TypeReplicationOffer), Manifest: contracts.SignedManifest{
		Header: contracts.NewHeader(contracts.TypeSignedManifest), Manifest: body,
		Signature: ed25519.Sign(wrong, contracts.ManifestSigningInput(body)), Key: parent.Info.SiteKey,
	}}
	subj, _ := contracts.SiteSubject("CHD", "PAR", contracts.KindReplOffer)
	// The reply inbox's interest crosses the leaf link a moment after the
	// subscription: send until an answer comes (each send is quarantined).
	data, _ := json.Marshal(offer)
	sub, err := nc.SubscribeSync(inbox + ".quarantine-test")
	if err != nil {
		t.Fatal(err)
	}
	var reply *nats.Msg
	wait(t, 15*time.Second, "the child's despooler to answer", func() bool {
		if err := nc.PublishRequest(subj, sub.Subject, data); err != nil {
			return false
		}
		reply, err = sub.NextMsg(time.Second)
		return err == nil
	})
	if reply.Header.Get("Nats-Service-Error-Code") == "" {
		t.Fatalf("a badly signed offer was answered %s, want an error", reply.Data)
	}
	var q []contracts.QuarantineInfo
	wait(t, 15*time.Second, "the offer in the child's quarantine", func() bool {
		q, err = cop.QuarantineList(ctx(t))
		return err == nil && len(q) >= 1
	})
	if q[0].From != "PAR" || q[0].What != "offer" || q[0].Package != "" && q[0].Package != "evil" || q[0].Reason == "" {
		t.Fatalf("quarantine entry %+v", q[0])
	}
	if list, err := cop.PackageList(ctx(t), ""); err != nil || len(list) != 0 {
		t.Fatalf("child library = %v, %v; want nothing installed", list, err)
	}
	// The operator sees what the parent sent: the offer's bytes, through
	// the CLI into a new file, or base64 in -o json.
	dataFile := filepath.Join(t.TempDir(), "offer.json")
	out := child.cli(t, "packages", "quarantine", "show", q[0].ID, "--data", dataFile)
	if got, err := os.ReadFile(dataFile); err != nil || !bytes.Equal(got, data) || !strings.Contains(out, "written to "+dataFile) {
		t.Fatalf("quarantine show --data wrote %d bytes (%v), want the %d of the offer; output:\n%s", len(got), err, len(data), out)
	}
	if _, _, err := steward(t, child, child.AdminIdentity(), "", "packages", "quarantine", "show", q[0].ID, "--data", dataFile); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("quarantine show --data over an existing file: got %v, want a refusal", err)
	}
	var shown contracts.QuarantineShowResponse
	child.cliJSON(t, &shown, "packages", "quarantine", "show", q[0].ID)
	if shown.Entry.ID != q[0].ID || !bytes.Equal(shown.Data, data) || shown.Truncated {
		t.Fatalf("quarantine show -o json: %+v", shown)
	}
	if rest, err := cop.QuarantineDelete(ctx(t), q[0].ID); err != nil || len(rest) != len(q)-1 {
		t.Fatalf("quarantine delete = %v, %v; want %d entries left", rest, err, len(q)-1)
	}
	if _, err := cop.QuarantineDelete(ctx(t), q[0].ID); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("deleting it again = %v, want not_found", err)
	}

	// A refused chunk keeps no bytes: show says so, and --data writes no
	// file and fails, naming why.
	chunkSubj, _ := contracts.SiteSubject("CHD", "PAR", contracts.KindReplChunk)
	if err := nc.PublishRequest(chunkSubj, sub.Subject, []byte("evil")); err != nil {
		t.Fatal(err)
	}
	if reply, err = sub.NextMsg(10 * time.Second); err != nil || reply.Header.Get("Nats-Service-Error-Code") == "" {
		t.Fatalf("a chunk without its headers: answered %v (%v), want an error", reply, err)
	}
	var chunk contracts.QuarantineInfo
	wait(t, 15*time.Second, "the chunk in the child's quarantine", func() bool {
		q, err = cop.QuarantineList(ctx(t))
		for _, e := range q {
			if e.What == "chunk" {
				chunk = e
			}
		}
		return err == nil && chunk.ID != ""
	})
	if out := child.cli(t, "packages", "quarantine", "show", chunk.ID); !strings.Contains(out, "Bytes kept:") || !strings.Contains(out, "none") {
		t.Fatalf("quarantine show of a chunk:\n%s\nwant it to say no bytes are kept", out)
	}
	noData := filepath.Join(t.TempDir(), "chunk.bin")
	if _, _, err := steward(t, child, child.AdminIdentity(), "", "packages", "quarantine", "show", chunk.ID, "--data", noData); err == nil || !strings.Contains(err.Error(), "kept no bytes") {
		t.Fatalf("quarantine show --data of a chunk: got %v, want a refusal saying no bytes are kept", err)
	}
	if _, err := os.Stat(noData); !os.IsNotExist(err) {
		t.Fatalf("quarantine show --data of a chunk left a file: %v", err)
	}
}
