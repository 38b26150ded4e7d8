package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
)

func (b *bench) identity() state.Identity {
	return state.Identity{ClientID: b.clientID, AgentKey: b.agentPub, Site: testSite, SiteKey: b.sitePub, Name: "pc-042", EnrolledAt: time.Now()}
}

// TestVerifyContentList: only a list the pinned site key signed, for this
// client and site, unexpired, with sound assignments, is accepted.
func TestVerifyContentList(t *testing.T) {
	b := newBench(t)
	cs := &contentSite{t: t, b: b}
	id := b.identity()
	now := time.Now()
	digest := contracts.ChunkHash([]byte("m"))
	base := func() contracts.ContentList {
		return contracts.ContentList{Header: contracts.NewHeader(contracts.TypeContentList), Site: testSite, Client: b.clientID,
			Issued: now, Expires: now.Add(time.Hour), Packages: []contracts.ContentAssignment{{Package: "tools", Version: "1.0", Digest: digest, Size: 10}}}
	}
	if l, err := VerifyContentList(cs.signedList(b.siteKP, base()), id, now); err != nil || len(l.Packages) != 1 {
		t.Fatalf("a good list: got %+v, %v", l, err)
	}
	other := b.otherKey()
	reencode := func(data []byte, f func(r *contracts.ContentListResponse)) []byte {
		var r contracts.ContentListResponse
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatal(err)
		}
		f(&r)
		out, _ := json.Marshal(r)
		return out
	}
	with := func(f func(l *contracts.ContentList)) []byte {
		l := base()
		f(&l)
		return cs.signedList(b.siteKP, l)
	}
	for _, tc := range []struct {
		name, want string
		data       []byte
	}{
		{"another key", "not the pinned key", cs.signedList(other, base())},
		{"claims the pinned key", "does not verify", reencode(cs.signedList(other, base()), func(r *contracts.ContentListResponse) { r.Key = b.sitePub })},
		{"body changed", "does not verify", reencode(cs.signedList(b.siteKP, base()), func(r *contracts.ContentListResponse) {
			r.List = []byte(strings.Replace(string(r.List), "tools", "toolz", 1))
		})},
		{"short signature", "unsigned", reencode(cs.signedList(b.siteKP, base()), func(r *contracts.ContentListResponse) { r.Signature = r.Signature[:10] })},
		{"wrong type", "message type", reencode(cs.signedList(b.siteKP, base()), func(r *contracts.ContentListResponse) { r.Type = contracts.TypeSignedPolicy })},
		{"not json", "not a content list", []byte("{")},
		{"another client", "for client", with(func(l *contracts.ContentList) { l.Client = "0195a3c4-0000-7000-8000-0000000000c9" })},
		{"another site", "for site", with(func(l *contracts.ContentList) { l.Site = "OTH" })},
		{"expired", "expired", with(func(l *contracts.ContentList) { l.Expires = now.Add(-time.Second) })},
		{"issued ahead", "in the future", with(func(l *contracts.ContentList) { l.Issued = now.Add(time.Hour) })},
		{"body type", "signed body of type", with(func(l *contracts.ContentList) { l.Type = contracts.TypePolicy })},
		{"bad name", "package name", with(func(l *contracts.ContentList) { l.Packages[0].Package = "../x" })},
		{"bad version", "version", with(func(l *contracts.ContentList) { l.Packages[0].Version = ".." })},
		{"bad digest", "digest", with(func(l *contracts.ContentList) { l.Packages[0].Digest = "abc" })},
		{"negative size", "size", with(func(l *contracts.ContentList) { l.Packages[0].Size = -1 })},
		{"twice", "twice", with(func(l *contracts.ContentList) { l.Packages = append(l.Packages, l.Packages[0]) })},
	} {
		if _, err := VerifyContentList(tc.data, id, now); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

// TestContentListRejected: lists with a bad signature or for another
// client change nothing (no manifest is asked for) and are reported with
// status message 10012; a good list after content.changed installs.
func TestContentListRejected(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	svc := b.services()
	status := statusService(t, svc)
	cs := b.contentSite(svc)
	p := b.newPackage("tools", "1.0", []testFile{{"f", 0o644, []byte("x")}}, nil)
	cs.assign(p)
	other := b.otherKey()
	cs.setList(func() []byte { return cs.signedList(other, cs.listOf()) })
	a := b.startAgent(nil)
	msg := statusOf(t, status, contracts.StatusAgentContentRejected)
	if !strings.Contains(msg.Properties["reason"], "not the pinned key") {
		t.Fatalf("got %+v", msg)
	}
	cs.setList(func() []byte {
		l := cs.listOf()
		l.Client = "0195a3c4-0000-7000-8000-0000000000c9"
		return cs.signedList(b.siteKP, l)
	})
	cs.changed(svc)
	waitFor(t, "the second rejection", func() bool { return countStatus(status, contracts.StatusAgentContentRejected) == 2 })
	if m, c, _ := cs.counts(); m != 0 || c != 0 || len(a.Content()) != 0 {
		t.Fatalf("after rejected lists got %d manifest and %d chunk requests, content %+v; want none", m, c, a.Content())
	}
	cs.setList(nil)
	cs.changed(svc)
	if rep := cs.reportFor("tools@1.0"); rep.State != contracts.ContentInstalled {
		t.Fatalf("got %+v", rep)
	}
}

// TestVerifyManifest: a manifest is trusted by its digest; one signed by
// the pinned key must verify; it must be the version assigned and valid.
func TestVerifyManifest(t *testing.T) {
	b := newBench(t)
	id := b.identity()
	m, _ := buildManifest("tools", "1.0", []testFile{{"f", 0o644, []byte("x")}}, nil)
	answer := func(sm contracts.SignedManifest) []byte {
		data, _ := json.Marshal(contracts.ContentManifestResponse{Header: contracts.NewHeader(contracts.TypeContentManifestResp), Manifest: sm})
		return data
	}
	good := signManifest(t, b.siteKP, m)
	asg := contracts.ContentAssignment{Package: "tools", Version: "1.0", Digest: good.Digest()}
	if _, err := verifyManifest(answer(good), asg, id); err != nil {
		t.Fatalf("a good manifest: %v", err)
	}
	// Signed by the site that relayed it (a key this agent does not know):
	// the digest is what makes it trusted.
	relayed := signManifest(t, b.otherKey(), m)
	if _, err := verifyManifest(answer(relayed), asg, id); err != nil {
		t.Fatalf("a relayed manifest: %v", err)
	}
	forged := relayed
	forged.Key = b.sitePub
	other, _ := buildManifest("tools", "1.0", []testFile{{"f", 0o644, []byte("y")}}, nil)
	renamed := m
	renamed.Version = "2.0"
	invalid := m
	invalid.ChunkSize = 1
	for _, tc := range []struct {
		name, want string
		sm         contracts.SignedManifest
	}{
		{"other content", "digest", signManifest(t, b.siteKP, other)},
		{"pinned key, bad signature", "does not verify", forged},
		{"another version", "not tools@1.0", signManifest(t, b.siteKP, renamed)},
		{"invalid", "chunk size", signManifest(t, b.siteKP, invalid)},
	} {
		a := asg
		if tc.name != "other content" {
			a.Digest = tc.sm.Digest()
		}
		if _, err := verifyManifest(answer(tc.sm), a, id); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

// TestCheckContentPaths: defence beyond Validate.
func TestCheckContentPaths(t *testing.T) {
	m := func(files []string, links ...contracts.ManifestLink) *contracts.Manifest {
		out := &contracts.Manifest{Links: links}
		for _, f := range files {
			out.Files = append(out.Files, contracts.ManifestFile{Path: f})
		}
		return out
	}
	l := func(p, target string) contracts.ManifestLink { return contracts.ManifestLink{Path: p, Target: target} }
	for _, ok := range []*contracts.Manifest{
		m([]string{"a/b/c"}, l("x", "a/b/c"), l("a/y", "../x"), l("a/b/z", "../../a/b/c"), l("root", ".")),
		m([]string{"f"}, l("l1", "l2"), l("l2", "f")), // a chain that ends at links is resolved link by link
	} {
		if err := checkContentPaths(ok); err != nil {
			t.Errorf("%+v: got %v, want nil", ok, err)
		}
	}
	for _, bad := range []*contracts.Manifest{
		m([]string{"../evil"}),
		m([]string{"/etc/evil"}),
		m([]string{"a/../../evil"}),
		m([]string{`a\..\evil`}),
		m([]string{"f"}, l("l", "../evil")),
		m([]string{"f"}, l("a/l", "../../evil")),
		m([]string{"f"}, l("l", "/etc")),
		m([]string{"f"}, l("d/up", ".."), l("x", "d/up/../..")), // passes Validate: ".." taken lexically
		m([]string{"l/f"}, l("l", "elsewhere")),
	} {
		if err := checkContentPaths(bad); err == nil {
			t.Errorf("%+v: got nil, want an error", bad)
		}
	}
}

// TestContentBadManifests: a manifest whose digest is not the list's, and
// manifests (with the right digest) whose paths or links would leave the
// package, served by a site that skips Validate: each version fails before
// any chunk is asked for, and nothing is written outside the content
// directory or installed.
func TestContentBadManifests(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	svc := b.services()
	cs := b.contentSite(svc)
	file := []testFile{{"f", 0o644, []byte("evil")}}
	swapped := b.newPackage("swapped", "1", file, nil)
	otherM, _ := buildManifest("swapped", "1", []testFile{{"f", 0o644, []byte("other")}}, nil)
	otherSM := signManifest(t, b.siteKP, otherM)
	swapped.served = &otherSM
	escape := func(pkg string, mutate func(m *contracts.Manifest)) *testPackage {
		m, chunks := buildManifest(pkg, "1", file, nil)
		mutate(&m)
		return b.packageOf(m, chunks, file)
	}
	pkgs := []*testPackage{
		swapped,
		escape("dotdot", func(m *contracts.Manifest) { m.Files[0].Path = "../../evil" }),
		escape("absolute", func(m *contracts.Manifest) { m.Files[0].Path = filepath.Join(b.dir, "evil") }),
		escape("link-out", func(m *contracts.Manifest) { m.Links = []contracts.ManifestLink{{Path: "l", Target: "../../../evil"}} }),
		escape("link-chain", func(m *contracts.Manifest) {
			m.Links = []contracts.ManifestLink{{Path: "d/up", Target: ".."}, {Path: "x", Target: "d/up/../.."}}
		}),
	}
	cs.assign(pkgs...)
	b.startAgent(nil)
	var keys []string
	for _, p := range pkgs {
		keys = append(keys, p.asg.Package+"@1")
	}
	reports := cs.reportsOf(keys...)
	for key, want := range map[string]string{"swapped@1": "digest", "dotdot@1": "escapes", "absolute@1": "absolute",
		"link-out@1": "escapes", "link-chain@1": "passes through"} {
		if r := reports[key]; r.State != contracts.ContentFailed || !strings.Contains(r.Error, want) {
			t.Errorf("%s: got %+v, want failed with %q", key, r, want)
		}
	}
	if _, chunks, _ := cs.counts(); chunks != 0 {
		t.Errorf("got %d chunk requests, want none", chunks)
	}
	des, _ := os.ReadDir(filepath.Join(b.dir, ContentDirName))
	for _, de := range des {
		if de.Name() != stagingDirName {
			t.Errorf("the content directory holds %s", de.Name())
		}
	}
	for _, p := range []string{filepath.Join(b.dir, "evil"), filepath.Join(filepath.Dir(b.dir), "evil")} {
		if exists(p) {
			t.Errorf("%s was written", p)
		}
	}
}

// TestContentSizeBombs: a version over the agent's limit fails before its
// manifest is fetched (the list's size), or before any chunk (the
// manifest's size when the list understates it); one that does not fit
// the free disk space fails before any chunk, saying how much is free.
func TestContentSizeBombs(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	svc := b.services()
	cs := b.contentSite(svc)
	big := b.newPackage("big", "1", []testFile{{"f", 0o644, randomBytes(1, 2<<20)}}, nil)
	understated := b.newPackage("understated", "1", []testFile{{"f", 0o644, randomBytes(2, 2<<20)}}, nil)
	understated.asg.Size = 10
	cs.assign(big, understated)
	a := b.newAgent(func(c *Config) { c.ContentMax = 1 << 20 })
	b.run(a)
	reports := cs.reportsOf("big@1", "understated@1")
	for key, want := range map[string]string{"big@1": "2.0 MiB, over this agent's limit of 1.0 MiB", "understated@1": "by its manifest, over this agent's limit"} {
		if r := reports[key]; r.State != contracts.ContentFailed || !strings.Contains(r.Error, want) || !strings.Contains(r.Error, "refused before download") {
			t.Errorf("%s: got %+v, want failed with %q", key, r, want)
		}
	}
	if m, c, _ := cs.counts(); m != 1 || c != 0 {
		t.Fatalf("got %d manifest and %d chunk requests, want the understated one's manifest alone", m, c)
	}
	b.stopAgent(a)

	// A disk with 10 MiB free takes nothing of 1 MiB: 64 MiB stay spare.
	small := b.newPackage("small", "1", []testFile{{"f", 0o644, randomBytes(3, 1<<20)}}, nil)
	cs.assign(small)
	cs.resetCounts()
	a = b.newAgent(nil)
	a.content.freeSpace = func(string) (int64, error) { return 10 << 20, nil }
	b.run(a)
	r := cs.reportFor("small@1")
	if r.State != contracts.ContentFailed || !strings.Contains(r.Error, "has 10.0 MiB free") {
		t.Fatalf("got %+v, want failed for want of space", r)
	}
	if _, c, _ := cs.counts(); c != 0 {
		t.Fatalf("got %d chunk requests, want none", c)
	}
}
