package replication

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
)

// Each test site is its own nats-server with its own JetStream domain (the
// site code), linked to its parent by a leaf connection, as in a real
// hierarchy: JetStream never crosses the link, site subjects do.

const waitFor = 15 * time.Second

// syncAlways makes the test servers sync every JetStream write, as a
// site's server does (sync_interval: always); the benchmark sets it.
var syncAlways bool

// testSite is one site: a server, its service's connections and key, and
// a replication service that can be stopped and started again.
type testSite struct {
	t        testing.TB
	code     string
	srv      *server.Server
	leafPort int
	nc       *nats.Conn
	siteNC   *nats.Conn
	kp       nkeys.KeyPair
	peers    StaticPeers
	dir      *fakeDirectory
	emit     *recEmitter
	cfg      func(*Config)

	svc    *Service
	cancel context.CancelFunc
	done   chan error
}

// freePort is a TCP port nobody listens on (for a leaf listener).
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newSite starts a site's server; parent, when set, is linked as its
// parent (each pins the other's key).
func newSite(t testing.TB, code string, parent *testSite) *testSite {
	t.Helper()
	opts := &server.Options{
		ServerName: code, Host: "127.0.0.1", Port: -1, JetStream: true, JetStreamDomain: code,
		StoreDir: t.TempDir(), NoLog: true, NoSigs: true, SyncAlways: syncAlways,
	}
	ts := &testSite{t: t, code: code, peers: StaticPeers{}, dir: newFakeDirectory(), emit: &recEmitter{}}
	ts.leafPort = freePort(t)
	opts.LeafNode.Host, opts.LeafNode.Port = "127.0.0.1", ts.leafPort
	if parent != nil {
		u, _ := url.Parse("nats-leaf://127.0.0.1:" + strconv.Itoa(parent.leafPort))
		// As the parent's callout grants a child's leaf connection only the
		// site subjects, nothing of either site's JetStream crosses the link.
		private := []string{"$KV.>", "$O.>", "$JS.>", "$JSC.>"}
		opts.LeafNode.Remotes = []*server.RemoteLeafOpts{{URLs: []*url.URL{u}, DenyImports: private, DenyExports: private}}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("server %s: %v", code, err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatalf("server %s not ready", code)
	}
	t.Cleanup(srv.Shutdown)
	ts.srv = srv
	ts.nc = natstest.Connect(t, srv)
	inbox, _ := contracts.SiteInbox(code)
	ts.siteNC = natstest.Connect(t, srv, nats.CustomInboxPrefix(inbox))
	ts.kp, _ = nkeys.CreateServer()
	if parent != nil {
		natstest.Wait(t, waitFor, "the leaf link of "+code, func() bool { return srv.NumLeafNodes() > 0 && parent.srv.NumLeafNodes() > 0 })
		ts.peers[parent.code] = contracts.SitePeer{Site: parent.code, Role: contracts.PeerParent, SigningKey: parent.pub()}
		parent.peers[code] = contracts.SitePeer{Site: code, Role: contracts.PeerChild, SigningKey: ts.pub()}
	}
	return ts
}

func (ts *testSite) pub() string {
	p, _ := ts.kp.PublicKey()
	return p
}

// config is the site's service configuration.
func (ts *testSite) config() Config {
	cfg := Config{
		NC: ts.nc, SiteNC: ts.siteNC, Site: ts.code, SiteKey: ts.kp, NoAuthz: true, Peers: ts.peers, Directory: ts.dir,
		Emitter: ts.emit, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		RetryBase: 50 * time.Millisecond, RetryMax: 400 * time.Millisecond, PruneEvery: -1,
	}
	if ts.cfg != nil {
		ts.cfg(&cfg)
	}
	return cfg
}

// start creates the service and runs it until stop or the test's end.
func (ts *testSite) start() *Service {
	ts.t.Helper()
	svc, err := New(context.Background(), ts.config())
	if err != nil {
		ts.t.Fatalf("site %s: New: %v", ts.code, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	select {
	case <-svc.Ready():
	case err := <-done:
		cancel()
		ts.t.Fatalf("site %s: Run: %v", ts.code, err)
	case <-time.After(waitFor):
		cancel()
		ts.t.Fatalf("site %s: not ready", ts.code)
	}
	ts.svc, ts.cancel, ts.done = svc, cancel, done
	ts.t.Cleanup(ts.stop)
	return svc
}

// stop stops the service and waits for Run to return.
func (ts *testSite) stop() {
	if ts.cancel == nil {
		return
	}
	ts.cancel()
	select {
	case err := <-ts.done:
		if err != nil {
			ts.t.Errorf("site %s: Run: %v", ts.code, err)
		}
	case <-time.After(waitFor):
		ts.t.Errorf("site %s: Run did not return", ts.code)
	}
	ts.cancel = nil
}

// waitInterest waits until the server of ts sees a subscriber of subject
// (across the leaf link).
func (ts *testSite) waitInterest(subject string) {
	ts.t.Helper()
	natstest.Wait(ts.t, waitFor, "interest in "+subject+" at "+ts.code, func() bool {
		return ts.srv.GlobalAccount().SubscriptionInterest(subject)
	})
}

// recEmitter records the status messages of a service.
type recEmitter struct {
	mu   sync.Mutex
	msgs []contracts.StatusMessage
}

func (e *recEmitter) Emit(_ context.Context, id int, props map[string]string) contracts.StatusMessage {
	m := contracts.NewStatus(id, props)
	e.mu.Lock()
	e.msgs = append(e.msgs, m)
	e.mu.Unlock()
	return m
}

func (e *recEmitter) count(id int) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, m := range e.msgs {
		if m.MsgID == id {
			n++
		}
	}
	return n
}

func (e *recEmitter) last(id int) (contracts.StatusMessage, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.msgs) - 1; i >= 0; i-- {
		if e.msgs[i].MsgID == id {
			return e.msgs[i], true
		}
	}
	return contracts.StatusMessage{}, false
}

// fakeDirectory is discovery: clients' collections and collections' members.
type fakeDirectory struct {
	mu      sync.Mutex
	members map[string][]string // collection ID -> client IDs
	asked   int
}

func newFakeDirectory() *fakeDirectory { return &fakeDirectory{members: map[string][]string{}} }

func (d *fakeDirectory) add(collection string, clients ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.members[collection] = append(d.members[collection], clients...)
}

func (d *fakeDirectory) Collections(_ context.Context, client string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.asked++
	out := []string{contracts.AllSystemsID}
	for c, ms := range d.members {
		if slices.Contains(ms, client) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (d *fakeDirectory) Members(_ context.Context, _, collection string) ([]contracts.Named, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ms, ok := d.members[collection]
	if !ok {
		return nil, errors.New("no such collection")
	}
	out := make([]contracts.Named, len(ms))
	for i, id := range ms {
		out[i] = contracts.Named{ID: id, Name: "n-" + id}
	}
	return out, nil
}

// testFile is a file of a package to make.
type testFile struct {
	path string
	data []byte
	mode uint32
}

// randomBytes is n random bytes.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// buildManifest chunks files into a manifest of pkg@version and returns
// it with its chunks by hash.
func buildManifest(pkg, version string, files []testFile, links ...contracts.ManifestLink) (contracts.Manifest, map[string][]byte) {
	m := contracts.Manifest{Package: pkg, Version: version, Links: links}
	chunks := map[string][]byte{}
	for _, f := range files {
		mf := contracts.ManifestFile{Path: f.path, Mode: f.mode, Size: int64(len(f.data)), SHA256: contracts.ChunkHash(f.data)}
		if mf.Mode == 0 {
			mf.Mode = 0o644
		}
		for off := 0; off < len(f.data); off += contracts.ChunkSize {
			c := f.data[off:min(off+contracts.ChunkSize, len(f.data))]
			h := contracts.ChunkHash(c)
			chunks[h] = c
			mf.Chunks = append(mf.Chunks, h)
		}
		m.Files = append(m.Files, mf)
	}
	return m, chunks
}

// createVersion uploads the chunks of files the library lacks and
// creates pkg@version at svc.
func createVersion(t testing.TB, svc *Service, pkg, version string, files []testFile, links ...contracts.ManifestLink) (contracts.PackageInfo, map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	m, chunks := buildManifest(pkg, version, files, links...)
	missing, err := svc.MissingChunks(ctx, m.Chunks())
	if err != nil {
		t.Fatalf("MissingChunks: %v", err)
	}
	for _, h := range missing {
		if err := svc.PutChunk(ctx, h, chunks[h]); err != nil {
			t.Fatalf("PutChunk: %v", err)
		}
	}
	info, err := svc.CreateVersion(ctx, m, "alice")
	if err != nil {
		t.Fatalf("CreateVersion: %v", err)
	}
	if info.Installed.IsZero() {
		t.Fatalf("CreateVersion answered %+v: no install time", info)
	}
	return info, chunks
}

// jobOf is the job of pkg@version to site.
func jobOf(svc *Service, pkg, version, site string) (contracts.PackageSiteStatus, bool) {
	for _, j := range svc.Jobs(pkg, version) {
		if j.Site == site {
			return j, true
		}
	}
	return contracts.PackageSiteStatus{}, false
}

// waitJob waits until the job of pkg@version to site is in state.
func waitJob(t testing.TB, svc *Service, pkg, version, site, state string) contracts.PackageSiteStatus {
	t.Helper()
	var j contracts.PackageSiteStatus
	natstest.Wait(t, waitFor, "job "+pkg+"@"+version+" -> "+site+" "+state, func() bool {
		j, _ = jobOf(svc, pkg, version, site)
		return j.State == state
	})
	return j
}
