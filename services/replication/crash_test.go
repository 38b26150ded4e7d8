package replication

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
)

// Environment of the crash test's child site process.
const (
	crashDirEnv    = "STEWARD_REPL_CRASH_DIR"    // its JetStream store
	crashParentEnv = "STEWARD_REPL_CRASH_PARENT" // the parent's leaf URL
	crashSeedEnv   = "STEWARD_REPL_CRASH_SEED"   // its site key
	crashPinEnv    = "STEWARD_REPL_CRASH_PIN"    // the parent's signing key
)

// TestCrashChildProcess is the child site the crash test kills: a
// nats-server syncing every JetStream write, linked to the parent, and a
// replication service, in this test binary run again as a child process.
// It prints READY and serves until it is killed. Run on its own it does
// nothing.
func TestCrashChildProcess(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		return // not a test of its own: the body of TestKilledDestinationResumes's child process (the os/exec helper pattern)
	}
	u, err := url.Parse(os.Getenv(crashParentEnv))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromSeed([]byte(os.Getenv(crashSeedEnv)))
	if err != nil {
		t.Fatal(err)
	}
	private := []string{"$KV.>", "$O.>", "$JS.>", "$JSC.>"}
	srv, err := server.NewServer(&server.Options{
		ServerName: "CHD", Host: "127.0.0.1", Port: -1, JetStream: true, JetStreamDomain: "CHD",
		StoreDir: dir, SyncAlways: true, NoLog: true, NoSigs: true,
		LeafNode: server.LeafNodeOpts{Remotes: []*server.RemoteLeafOpts{{URLs: []*url.URL{u}, DenyImports: private, DenyExports: private}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		t.Fatal("server not ready")
	}
	inbox, _ := contracts.SiteInbox("CHD")
	cfg := Config{
		NC: natstest.Connect(t, srv), SiteNC: natstest.Connect(t, srv, nats.CustomInboxPrefix(inbox)), Site: "CHD", SiteKey: kp, NoAuthz: true,
		Peers:     StaticPeers{"PAR": {Site: "PAR", Role: contracts.PeerParent, SigningKey: os.Getenv(crashPinEnv)}},
		Directory: newFakeDirectory(), Emitter: &recEmitter{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		RetryBase: 50 * time.Millisecond, RetryMax: 400 * time.Millisecond, PruneEvery: -1,
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Run(context.Background()) }()
	<-s.Ready()
	natstest.ChildReady("")
}

// startCrashChild starts the child site process on store dir and waits
// until it serves; kill ends it with kill -9.
func startCrashChild(t *testing.T, dir, parentLeaf string, seed []byte, parentKey string) (kill func()) {
	t.Helper()
	_, kill = natstest.StartChild(t, "TestCrashChildProcess",
		crashDirEnv+"="+dir, crashParentEnv+"="+parentLeaf, crashSeedEnv+"="+string(seed), crashPinEnv+"="+parentKey)
	return kill
}

// TestKilledDestinationResumes kills the destination site's process (kill
// -9: its server and its despooler) in the middle of a transfer: started
// again on the same store, it holds every chunk it acknowledged, the next
// offer asks only for the others, and no more than the one chunk in flight
// at the kill is sent twice.
func TestKilledDestinationResumes(t *testing.T) {
	par := newSite(t, "PAR", nil)
	chdKey, _ := nkeys.CreateServer()
	chdPub, _ := chdKey.PublicKey()
	chdSeed, _ := chdKey.Seed()
	par.peers["CHD"] = contracts.SitePeer{Site: "CHD", Role: contracts.PeerChild, SigningKey: chdPub}
	p := par.start()
	ctx := context.Background()
	leaf := fmt.Sprintf("nats-leaf://127.0.0.1:%d", par.leafPort)
	dir := t.TempDir()
	kill := startCrashChild(t, dir, leaf, chdSeed, par.pub())

	const n = 8
	var files []testFile
	for i := range n {
		files = append(files, testFile{path: "f" + string(rune('a'+i)), data: randomBytes(contracts.ChunkSize)})
	}
	info, _ := createVersion(t, p, "big", "4.0", files)
	// Slow enough to kill in the middle: 4 chunks a second, so at most one
	// is in flight at any moment.
	if _, err := p.SetRoute(ctx, "CHD", 2<<20, "", "alice"); err != nil {
		t.Fatal(err)
	}
	par.waitInterest("steward.CHD.site.PAR.repl.chunk")
	if _, err := p.Distribute(ctx, "big", "4.0", []string{"CHD"}, "alice"); err != nil {
		t.Fatal(err)
	}
	natstest.Wait(t, waitFor, "3 chunks sent", func() bool {
		j, _ := jobOf(p, "big", "4.0", "CHD")
		return j.Chunks >= 3
	})
	kill()
	natstest.Wait(t, waitFor, "the sender to notice", func() bool {
		j, _ := jobOf(p, "big", "4.0", "CHD")
		return j.Error != ""
	})
	sentAtKill := p.sender.sent.Load()

	startCrashChild(t, dir, leaf, chdSeed, par.pub())
	j := waitJob(t, p, "big", "4.0", "CHD", contracts.ContentInstalled)
	if j.Verified != info.Digest {
		t.Fatalf("verified %q, want %s", j.Verified, info.Digest)
	}
	resent := p.sender.sent.Load() - sentAtKill
	if j.ChunksTotal != int(resent) || resent == 0 || resent > n-3 {
		t.Fatalf("after the restart the offer asked for %d chunks and %d were sent: want the same, 1 to %d", j.ChunksTotal, resent, n-3)
	}
	if total := p.sender.sent.Load(); total > n+1 {
		t.Fatalf("%d chunks sent for %d: more than the one in flight at the kill sent twice", total, n)
	}
}
