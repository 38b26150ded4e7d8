package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
)

// This file plays the site's side of content: a responder on the real bus
// answers content.list, content.manifest, content.chunk and content.report
// for the bench's agent, serving test packages chunked as the site chunks
// them, and can be told to hold, tamper with or refuse what it serves.

// testFile is a file of a test package.
type testFile struct {
	path string
	mode uint32
	data []byte
}

// testPackage is one package version the test site serves.
type testPackage struct {
	asg      contracts.ContentAssignment
	m        contracts.Manifest
	signed   contracts.SignedManifest
	chunks   map[string][]byte
	files    []testFile
	served   *contracts.SignedManifest // what content.manifest answers instead of signed (nil: signed)
	hashesOf map[string][]string       // file path -> its chunk hashes
}

// randomBytes is n reproducible pseudo-random bytes.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed*7+1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// buildManifest chunks files as the site does.
func buildManifest(pkg, version string, files []testFile, links []contracts.ManifestLink) (contracts.Manifest, map[string][]byte) {
	m := contracts.Manifest{
		Header: contracts.NewHeader(contracts.TypeManifest), Site: testSite, Package: pkg, Version: version,
		Created: time.Now().UTC(), CreatedBy: "alice", ChunkSize: contracts.ChunkSize, Links: links,
	}
	chunks := map[string][]byte{}
	for _, f := range files {
		mf := contracts.ManifestFile{Path: f.path, Mode: f.mode, Size: int64(len(f.data)), SHA256: contracts.ChunkHash(f.data)}
		for off := 0; off < len(f.data); off += contracts.ChunkSize {
			c := f.data[off:min(off+contracts.ChunkSize, len(f.data))]
			h := contracts.ChunkHash(c)
			chunks[h] = c
			mf.Chunks = append(mf.Chunks, h)
		}
		m.Size += mf.Size
		m.Files = append(m.Files, mf)
	}
	return m, chunks
}

// signManifest signs m (as it is, valid or not) with kp.
func signManifest(t *testing.T, kp nkeys.KeyPair, m contracts.Manifest) contracts.SignedManifest {
	t.Helper()
	body, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := kp.Sign(contracts.ManifestSigningInput(body))
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	return contracts.SignedManifest{Header: contracts.NewHeader(contracts.TypeSignedManifest), Manifest: body, Signature: sig, Key: pub}
}

// newPackage is a test package signed by the bench's site.
func (b *bench) newPackage(pkg, version string, files []testFile, links []contracts.ManifestLink) *testPackage {
	m, chunks := buildManifest(pkg, version, files, links)
	return b.packageOf(m, chunks, files)
}

func (b *bench) packageOf(m contracts.Manifest, chunks map[string][]byte, files []testFile) *testPackage {
	sm := signManifest(b.t, b.siteKP, m)
	p := &testPackage{
		asg: contracts.ContentAssignment{Package: m.Package, Version: m.Version, Digest: sm.Digest(), Size: m.Size},
		m:   m, signed: sm, chunks: chunks, files: files, hashesOf: map[string][]string{},
	}
	for _, f := range m.Files {
		p.hashesOf[f.Path] = f.Chunks
	}
	return p
}

// contentSite is the test site's content service.
type contentSite struct {
	t  *testing.T
	b  *bench
	mu sync.Mutex
	// list answers content.list (default: the packages assigned, signed
	// by the site key).
	list      func() []byte
	pkgs      map[string]*testPackage
	assigned  []*testPackage
	manifests int            // content.manifest requests
	chunkReqs map[string]int // content.chunk requests, by hash
	// hold, when it returns true, leaves a chunk request unanswered (the
	// site went quiet); held receives its hash.
	hold   func(hash string) bool
	held   chan string
	answer func(hash string, data []byte) (header string, body []byte) // tampering; nil: honest
	// missing chunks are answered with a not_found service error.
	missing map[string]bool
	// busy chunks are answered with an unavailable service error, as many
	// times as the count says.
	busy map[string]int

	reports chan contracts.ContentReport
}

func (b *bench) contentSite(nc *nats.Conn) *contentSite {
	b.t.Helper()
	cs := &contentSite{t: b.t, b: b, pkgs: map[string]*testPackage{}, chunkReqs: map[string]int{}, missing: map[string]bool{}, busy: map[string]int{},
		held: make(chan string, 16), reports: make(chan contracts.ContentReport, 64)}
	sub := func(kind string, h func(m *nats.Msg)) {
		subject, err := contracts.AgentUp(testSite, b.clientID, kind)
		if err != nil {
			b.t.Fatal(err)
		}
		if _, err := nc.Subscribe(subject, h); err != nil {
			b.t.Fatal(err)
		}
	}
	sub(contracts.KindContentList, func(m *nats.Msg) {
		cs.mu.Lock()
		list := cs.list
		cs.mu.Unlock()
		if list == nil {
			list = func() []byte { return cs.signedList(b.siteKP, cs.listOf()) }
		}
		cs.respondMsg(m, nil, list())
	})
	sub(contracts.KindContentManifest, func(m *nats.Msg) {
		var req contracts.ContentManifestRequest
		if err := contracts.Decode(m.Data, contracts.TypeContentManifestReq, &req); err != nil {
			b.t.Errorf("bad manifest request: %v", err)
			return
		}
		cs.mu.Lock()
		cs.manifests++
		p := cs.pkgs[contracts.PackageKey(req.Package, req.Version)]
		cs.mu.Unlock()
		if p == nil {
			cs.serviceError(m, contracts.CodeNotFound, "no such package version")
			return
		}
		sm := p.signed
		if p.served != nil {
			sm = *p.served
		}
		cs.respond(m, contracts.ContentManifestResponse{Header: contracts.NewHeader(contracts.TypeContentManifestResp), Manifest: sm})
	})
	sub(contracts.KindContentChunk, func(m *nats.Msg) {
		var req contracts.ContentChunkRequest
		if err := contracts.Decode(m.Data, contracts.TypeContentChunkRequest, &req); err != nil {
			b.t.Errorf("bad chunk request: %v", err)
			return
		}
		cs.mu.Lock()
		cs.chunkReqs[req.Hash]++
		p := cs.pkgs[contracts.PackageKey(req.Package, req.Version)]
		hold, answer, missing, busy := cs.hold, cs.answer, cs.missing[req.Hash], cs.busy[req.Hash] > 0
		if busy {
			cs.busy[req.Hash]--
		}
		cs.mu.Unlock()
		if hold != nil && hold(req.Hash) {
			cs.held <- req.Hash
			return
		}
		if busy {
			cs.serviceError(m, contracts.CodeUnavailable, "busy")
			return
		}
		var data []byte
		if p != nil {
			data = p.chunks[req.Hash]
		}
		if data == nil || missing {
			cs.serviceError(m, contracts.CodeNotFound, "no such chunk")
			return
		}
		header := req.Hash
		if answer != nil {
			header, data = answer(req.Hash, data)
		}
		cs.respondMsg(m, nats.Header{contracts.HeaderChunk: {header}}, data)
	})
	sub(contracts.KindContentReport, func(m *nats.Msg) {
		var rep contracts.ContentReport
		if err := contracts.Decode(m.Data, contracts.TypeContentReport, &rep); err != nil {
			b.t.Errorf("bad content report: %v", err)
			return
		}
		cs.respond(m, contracts.ContentReportAck{Header: contracts.NewHeader(contracts.TypeContentReportAck)})
		cs.reports <- rep
	})
	if err := nc.Flush(); err != nil {
		b.t.Fatal(err)
	}
	return cs
}

// respondMsg answers m. The test may have ended (and closed the
// connection) while an agent still asked: that is no failure.
func (cs *contentSite) respondMsg(m *nats.Msg, h nats.Header, data []byte) {
	reply := nats.NewMsg(m.Reply)
	for k, v := range h {
		reply.Header[k] = v
	}
	reply.Data = data
	if err := m.RespondMsg(reply); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		cs.t.Errorf("respond: %v", err)
	}
}

func (cs *contentSite) respond(m *nats.Msg, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		cs.t.Error(err)
		return
	}
	cs.respondMsg(m, nil, data)
}

// serviceError answers m with a coded error, as a micro service does.
func (cs *contentSite) serviceError(m *nats.Msg, code contracts.Code, text string) {
	cs.respondMsg(m, nats.Header{"Nats-Service-Error": {text}, "Nats-Service-Error-Code": {strconv.Itoa(int(code))}}, nil)
}

// assign makes pkgs the versions assigned (and served).
func (cs *contentSite) assign(pkgs ...*testPackage) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.assigned = pkgs
	for _, p := range pkgs {
		cs.pkgs[p.asg.Package+"@"+p.asg.Version] = p
	}
}

// listOf is the content list of the versions assigned.
func (cs *contentSite) listOf() contracts.ContentList {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	now := time.Now().UTC()
	l := contracts.ContentList{Header: contracts.NewHeader(contracts.TypeContentList), Site: testSite, Client: cs.b.clientID,
		Issued: now, Expires: now.Add(time.Hour), Packages: []contracts.ContentAssignment{}}
	for _, p := range cs.assigned {
		l.Packages = append(l.Packages, p.asg)
	}
	return l
}

// signedList is the answer to content.list carrying l signed by kp.
func (cs *contentSite) signedList(kp nkeys.KeyPair, l contracts.ContentList) []byte {
	body, err := json.Marshal(l)
	if err != nil {
		cs.t.Fatal(err)
	}
	sig, _ := kp.Sign(contracts.ContentListSigningInput(body))
	pub, _ := kp.PublicKey()
	data, _ := json.Marshal(contracts.ContentListResponse{Header: contracts.NewHeader(contracts.TypeContentListResponse), List: body, Signature: sig, Key: pub})
	return data
}

func (cs *contentSite) setList(f func() []byte) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.list = f
}

func (cs *contentSite) counts() (manifests, chunks int, byHash map[string]int) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	byHash = map[string]int{}
	for h, n := range cs.chunkReqs {
		byHash[h] = n
		chunks += n
	}
	return cs.manifests, chunks, byHash
}

func (cs *contentSite) resetCounts() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.manifests, cs.chunkReqs = 0, map[string]int{}
}

// changed tells the agent its content changed.
func (cs *contentSite) changed(nc *nats.Conn) {
	subject, _ := contracts.AgentDown(testSite, cs.b.clientID, contracts.KindContentChanged)
	publishJSON(cs.t, nc, subject, struct{}{})
}

// reportFor waits for the report of pkg@version.
func (cs *contentSite) reportFor(key string) contracts.ContentReport {
	cs.t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case r := <-cs.reports:
			if r.Package+"@"+r.Version == key {
				return r
			}
		case <-deadline:
			cs.t.Fatalf("timed out waiting for the report of %s", key)
		}
	}
}

// statusService stores the agent's status messages.
func statusService(t *testing.T, nc *nats.Conn) *ackService {
	svc := &ackService{seen: map[string]int{}}
	svc.serve(t, nc, contracts.KindStatus, func(contracts.OutboxItem) string { return "store" })
	return svc
}

// statusOf waits for a stored status message of id and returns it.
func statusOf(t *testing.T, svc *ackService, id int) contracts.StatusMessage {
	t.Helper()
	var found contracts.StatusMessage
	waitFor(t, "status message "+strconv.Itoa(id), func() bool {
		svc.mu.Lock()
		defer svc.mu.Unlock()
		for _, it := range svc.stored {
			var m contracts.StatusMessage
			if json.Unmarshal(it.Data, &m) == nil && m.MsgID == id {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

func heldContent(a *Agent, key string) (contracts.ContentHeld, bool) {
	for _, c := range a.Content() {
		if c.Package+"@"+c.Version == key {
			return c, true
		}
	}
	return contracts.ContentHeld{}, false
}

// checkInstalled checks that p is installed, whole, under dir.
func checkInstalled(t *testing.T, dir string, p *testPackage) {
	t.Helper()
	for _, f := range p.files {
		path := filepath.Join(dir, filepath.FromSlash(f.path))
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, f.data) {
			t.Fatalf("%s: got %d bytes (%v), want the %d bytes served", f.path, len(got), err, len(f.data))
		}
		fi, _ := os.Lstat(path)
		if fi.Mode().Perm() != os.FileMode(f.mode) || !fi.Mode().IsRegular() {
			t.Errorf("%s: got mode %v, want %v", f.path, fi.Mode(), os.FileMode(f.mode))
		}
	}
	for _, l := range p.m.Links {
		got, err := os.Readlink(filepath.Join(dir, filepath.FromSlash(l.Path)))
		if err != nil || got != l.Target {
			t.Errorf("link %s: got %q (%v), want %q", l.Path, got, err, l.Target)
		}
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func toolsFiles(seed uint64) []testFile {
	tool := randomBytes(seed, 2*contracts.ChunkSize+100)
	return []testFile{
		{"bin/tool", 0o755, tool},
		{"README", 0o644, []byte("hello from tools\n")},
		{"empty", 0o600, nil},
		// The same bytes as the tool's first chunk: fetched once.
		{"share/doc/first.bin", 0o444, bytes.Clone(tool[:contracts.ChunkSize])},
	}
}

// TestContentInstall: the agent fetches its list at connect, installs the
// version assigned (files, modes, links, an empty file, a chunk two files
// share fetched once), reports it and sends status message 10010. A new
// assignment after content.changed installs too; the version no longer
// assigned stays installed.
func TestContentInstall(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	svc := b.services()
	status := statusService(t, svc)
	cs := b.contentSite(svc)
	v1 := b.newPackage("tools", "1.0", toolsFiles(1), []contracts.ManifestLink{{Path: "bin/latest", Target: "tool"}, {Path: "doc", Target: "share/doc"}})
	cs.assign(v1)
	a := b.startAgent(nil)

	rep := cs.reportFor("tools@1.0")
	if rep.State != contracts.ContentInstalled || rep.Bytes != v1.m.Size || rep.Digest != v1.asg.Digest || rep.Error != "" {
		t.Fatalf("got report %+v, want installed with %d bytes", rep, v1.m.Size)
	}
	dest := filepath.Join(b.dir, ContentDirName, "tools", "1.0")
	checkInstalled(t, dest, v1)
	if got, err := os.ReadFile(filepath.Join(dest, "doc", "first.bin")); err != nil || len(got) != contracts.ChunkSize {
		t.Fatalf("reading through the link doc: got %d bytes, %v", len(got), err)
	}
	_, chunks, byHash := cs.counts()
	if chunks != 4 {
		t.Errorf("got %d chunk requests (%v), want 4: each distinct chunk once", chunks, byHash)
	}
	if des, _ := os.ReadDir(filepath.Join(b.dir, ContentDirName, stagingDirName)); len(des) != 0 {
		t.Errorf("the staging directory still holds %v", des)
	}
	msg := statusOf(t, status, contracts.StatusAgentPackageInstalled)
	if msg.Properties["package"] != "tools" || msg.Properties["path"] != dest || msg.Properties["bytes"] != strconv.FormatInt(v1.m.Size, 10) {
		t.Errorf("got status message %+v", msg)
	}
	waitFor(t, "the report acknowledged", func() bool { c, _ := heldContent(a, "tools@1.0"); return c.Reported })
	held, _ := heldContent(a, "tools@1.0")
	if held.State != contracts.ContentInstalled || held.Path != dest || held.Bytes != v1.m.Size || !held.Assigned || held.Installed.IsZero() {
		t.Fatalf("got %+v", held)
	}
	if st := a.Status(); len(st.Content) != 1 || st.Content[0].Digest != v1.asg.Digest {
		t.Fatalf("got status content %+v", st.Content)
	}

	// Version 2 replaces 1 in the assignments.
	v2 := b.newPackage("tools", "2.0", toolsFiles(2), nil)
	cs.assign(v2)
	cs.changed(svc)
	if rep := cs.reportFor("tools@2.0"); rep.State != contracts.ContentInstalled {
		t.Fatalf("got report %+v", rep)
	}
	checkInstalled(t, filepath.Join(b.dir, ContentDirName, "tools", "2.0"), v2)
	waitFor(t, "version 1 no longer assigned", func() bool { c, _ := heldContent(a, "tools@1.0"); return !c.Assigned })
	if c, _ := heldContent(a, "tools@1.0"); c.State != contracts.ContentInstalled || !exists(dest) {
		t.Fatalf("version 1: got %+v, want it left installed", c)
	}
	checkInstalled(t, dest, v1)
}

// TestContentResume stops the agent in the middle of a download (the site
// stops answering at the fourth chunk): nothing is installed, and the next
// agent on the same state dir fetches only the chunks still missing.
func TestContentResume(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	svc := b.services()
	cs := b.contentSite(svc)
	files := []testFile{{"data.bin", 0o640, randomBytes(3, 5*contracts.ChunkSize-7)}, {"more.bin", 0o644, randomBytes(4, 100)}}
	p := b.newPackage("big", "1", files, nil)
	hashes := p.hashesOf["data.bin"]
	cs.assign(p)
	cs.mu.Lock()
	cs.hold = func(h string) bool { return h == hashes[3] }
	cs.mu.Unlock()

	a := b.startAgent(nil)
	if got := receive(t, cs.held, "the fourth chunk request"); got != hashes[3] {
		t.Fatalf("held %s, want the fourth chunk", got)
	}
	dest := filepath.Join(b.dir, ContentDirName, "big", "1")
	if exists(dest) {
		t.Fatal("the version's directory exists before its download completed")
	}
	c, _ := heldContent(a, "big@1")
	if c.State != state.ContentDownloading || c.Bytes != 3*contracts.ChunkSize {
		t.Fatalf("got %+v, want downloading with 3 chunks staged", c)
	}
	b.stopAgent(a)
	if exists(dest) {
		t.Fatal("the version's directory exists after the agent stopped mid-download")
	}

	cs.resetCounts()
	cs.mu.Lock()
	cs.hold = nil
	cs.mu.Unlock()
	a2 := b.startAgent(nil)
	if rep := cs.reportFor("big@1"); rep.State != contracts.ContentInstalled {
		t.Fatalf("got report %+v", rep)
	}
	checkInstalled(t, dest, p)
	_, chunks, byHash := cs.counts()
	if chunks != 3 || byHash[hashes[3]] != 1 || byHash[hashes[4]] != 1 || byHash[p.hashesOf["more.bin"][0]] != 1 {
		t.Fatalf("after the restart got chunk requests %v, want only the two missing chunks of data.bin and more.bin's", byHash)
	}
	if c, _ := heldContent(a2, "big@1"); c.State != contracts.ContentInstalled {
		t.Fatalf("got %+v", c)
	}
}

// TestContentFailures: a chunk whose bytes do not hash to what was asked,
// a chunk answered under another name, a chunk the site does not have
// (a coded error): each version fails, nothing of it is installed or left
// staged, it is reported and status message 10011 says why. A good version
// in the same list installs.
func TestContentFailures(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	svc := b.services()
	status := statusService(t, svc)
	cs := b.contentSite(svc)
	tampered := b.newPackage("tampered", "1", []testFile{{"f", 0o644, randomBytes(5, contracts.ChunkSize+10)}}, nil)
	renamed := b.newPackage("renamed", "1", []testFile{{"f", 0o644, randomBytes(6, 10)}}, nil)
	missing := b.newPackage("missing", "1", []testFile{{"f", 0o644, randomBytes(7, 10)}}, nil)
	good := b.newPackage("good", "1", []testFile{{"f", 0o644, randomBytes(8, 10)}}, nil)
	badBytes, badName := tampered.hashesOf["f"][1], renamed.hashesOf["f"][0]
	cs.mu.Lock()
	cs.answer = func(h string, data []byte) (string, []byte) {
		switch h {
		case badBytes:
			data = bytes.Clone(data)
			data[3] ^= 1
		case badName:
			return tampered.hashesOf["f"][0], data
		}
		return h, data
	}
	cs.missing[missing.hashesOf["f"][0]] = true
	cs.mu.Unlock()
	cs.assign(tampered, renamed, missing, good)
	a := b.startAgent(nil)

	reports := cs.reportsOf("tampered@1", "renamed@1", "missing@1", "good@1")
	for key, want := range map[string]string{"tampered@1": "hash to", "renamed@1": "the answer is chunk", "missing@1": "not_found"} {
		rep := reports[key]
		if rep.State != contracts.ContentFailed || !strings.Contains(rep.Error, want) {
			t.Errorf("%s: got report %+v, want failed with %q", key, rep, want)
		}
		pkg, _, _ := strings.Cut(key, "@")
		if exists(filepath.Join(b.dir, ContentDirName, pkg)) || exists(filepath.Join(b.dir, ContentDirName, stagingDirName, key)) {
			t.Errorf("%s: something of the failed version was left", key)
		}
	}
	if rep := reports["good@1"]; rep.State != contracts.ContentInstalled {
		t.Fatalf("good: got %+v", rep)
	}
	msg := statusOf(t, status, contracts.StatusAgentPackageFailed)
	if msg.Severity != contracts.SeverityError || msg.Properties["error"] == "" {
		t.Fatalf("got status message %+v", msg)
	}
	waitFor(t, "the failures recorded", func() bool {
		c, _ := heldContent(a, "tampered@1")
		return c.State == contracts.ContentFailed && c.Reported && strings.Contains(c.Error, "hash to")
	})

	// At the next sync the failed versions are tried again; the same
	// failures are neither reported nor sent as status messages again.
	// Versions install in list order: once the late one is reported, the
	// others have been tried.
	waitFor(t, "three failure messages", func() bool { return countStatus(status, contracts.StatusAgentPackageFailed) == 3 })
	late := b.newPackage("late", "1", []testFile{{"f", 0o644, randomBytes(9, 10)}}, nil)
	cs.assign(tampered, renamed, missing, good, late)
	manifests, _, _ := cs.counts()
	cs.changed(svc)
	if seen := cs.reportsUntil("late@1"); len(seen) != 1 {
		t.Fatalf("got reports %+v, want only late@1's", seen)
	}
	if m, _, _ := cs.counts(); m != manifests+4 {
		t.Fatalf("got %d manifest requests, want %d: the three failed versions tried again and the late one", m, manifests+4)
	}
	statusOf(t, status, contracts.StatusAgentPackageInstalled)
	waitFor(t, "late's status message", func() bool { return countStatus(status, contracts.StatusAgentPackageInstalled) == 2 })
	if n := countStatus(status, contracts.StatusAgentPackageFailed); n != 3 {
		t.Fatalf("got %d failure messages, want still 3", n)
	}
	c, _ := heldContent(a, "tampered@1")
	if wait := time.Until(c.Retry); wait < failedRetryBase || wait > 3*failedRetryBase {
		t.Fatalf("after two failures the retry is in %v, want about %v", wait, 2*failedRetryBase)
	}

	// A sync the site did not ask for (a reconnect, the refresh) does not
	// download the failed versions again before their retry time: each
	// attempt can be a whole download for every client assigned one.
	waitFor(t, "late's report acknowledged", func() bool { c, _ := heldContent(a, "late@1"); return c.Reported })
	b.stopAgent(a)
	later := b.newPackage("later", "1", []testFile{{"f", 0o644, randomBytes(10, 10)}}, nil)
	cs.assign(tampered, renamed, missing, good, late, later)
	manifests, _, _ = cs.counts()
	a = b.startAgent(nil)
	if seen := cs.reportsUntil("later@1"); len(seen) != 1 {
		t.Fatalf("got reports %+v, want only later@1's", seen)
	}
	if m, _, _ := cs.counts(); m != manifests+1 {
		t.Fatalf("got %d manifest requests, want %d: only the new version's, the failed ones wait for their retry time", m, manifests+1)
	}
	c, _ = heldContent(a, "tampered@1")
	if c.State != contracts.ContentFailed || time.Until(c.Retry) < failedRetryBase {
		t.Fatalf("tampered@1 after the restart: %+v, want failed and waiting", c)
	}

	// The site asks again (content.changed), and that sync stops short
	// before it reaches the failed versions (the site is busy with the
	// first version's chunk): the sync after the backoff still owes the
	// site the retry it asked for, and tries them before their time.
	blocker := b.newPackage("blocker", "1", []testFile{{"f", 0o644, randomBytes(11, 10)}}, nil)
	cs.mu.Lock()
	cs.busy[blocker.hashesOf["f"][0]] = 1
	cs.mu.Unlock()
	cs.assign(blocker, tampered, renamed, missing, good, late, later)
	retryWas := c.Retry
	cs.changed(svc)
	if seen := cs.reportsUntil("blocker@1"); len(seen) != 1 {
		t.Fatalf("got reports %+v, want only blocker@1's", seen)
	}
	waitFor(t, "tampered@1 tried again after the interrupted sync", func() bool {
		c, _ := heldContent(a, "tampered@1")
		return !c.Retry.Equal(retryWas) // set again only by a try
	})
}

// reportsOf waits for the reports of keys.
func (cs *contentSite) reportsOf(keys ...string) map[string]contracts.ContentReport {
	cs.t.Helper()
	got := map[string]contracts.ContentReport{}
	deadline := time.After(15 * time.Second)
	for len(got) < len(keys) {
		select {
		case r := <-cs.reports:
			got[r.Package+"@"+r.Version] = r
		case <-deadline:
			cs.t.Fatalf("timed out waiting for the reports of %v (got %+v)", keys, got)
		}
	}
	return got
}

// reportsUntil collects reports up to and including key's.
func (cs *contentSite) reportsUntil(key string) []contracts.ContentReport {
	cs.t.Helper()
	var seen []contracts.ContentReport
	deadline := time.After(15 * time.Second)
	for {
		select {
		case r := <-cs.reports:
			seen = append(seen, r)
			if r.Package+"@"+r.Version == key {
				return seen
			}
		case <-deadline:
			cs.t.Fatalf("timed out waiting for the report of %s (got %+v)", key, seen)
		}
	}
}

func countStatus(svc *ackService, id int) int {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	n := 0
	for _, it := range svc.stored {
		var m contracts.StatusMessage
		if json.Unmarshal(it.Data, &m) == nil && m.MsgID == id {
			n++
		}
	}
	return n
}

// TestContentInstalledBeforeKill: a kill after the install's rename and
// before the outcome's commit leaves the version complete in place and the
// index saying downloading; the next sync copies the installed chunks that
// still match instead of fetching them again.
func TestContentInstalledBeforeKill(t *testing.T) {
	b := newBench(t)
	b.enrolled()
	svc := b.services()
	cs := b.contentSite(svc)
	files := []testFile{{"data.bin", 0o640, randomBytes(3, 5*contracts.ChunkSize-7)}}
	p := b.newPackage("big", "1", files, nil)
	cs.assign(p)
	a := b.startAgent(nil)
	cs.reportFor("big@1")
	b.stopAgent(a)
	// What the kill leaves: the index as it was before the fetch.
	s, err := state.Open(b.dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.UpdateContent(0, func(idx map[string]state.ContentEntry) ([]state.Entry, error) {
		e := idx["big@1"]
		e.State, e.Path, e.Reported, e.Installed, e.Bytes = state.ContentDownloading, "", false, e.Installed.AddDate(-1, 0, 0), 0
		idx["big@1"] = e
		return nil, nil
	})
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	cs.resetCounts()
	a = b.startAgent(nil)
	cs.reportFor("big@1")
	if _, chunks, _ := cs.counts(); chunks != 0 {
		t.Errorf("%d chunks fetched again for a version complete in place, want 0", chunks)
	}
	if c, _ := heldContent(a, "big@1"); c.State != contracts.ContentInstalled {
		t.Errorf("big@1 is %q, want installed", c.State)
	}
	got, err := os.ReadFile(filepath.Join(b.dir, "content", "big", "1", "data.bin"))
	if err != nil || !bytes.Equal(got, files[0].data) {
		t.Errorf("the installed file: %v", err)
	}
}
