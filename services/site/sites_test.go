package site

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/admin"
	"github.com/stewardhq/steward/services/client"
	"github.com/stewardhq/steward/services/internal/natstest"
)

// running is a site started by a test.
type running struct {
	*Site
	log  *natstest.Buffer
	stop func()
}

// startSite runs a site in dir until stop (or the test's end).
func startSite(t *testing.T, cfg Config) *running {
	t.Helper()
	buf := &natstest.Buffer{} // the site's log, for assertions
	var w io.Writer = buf
	if os.Getenv("STEWARD_TEST_LOG") != "" {
		w = io.MultiWriter(buf, os.Stderr)
	}
	cfg.Log = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Listen = "127.0.0.1:-1"
	cfg.SiteSet = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	s, err := New(ctx, cfg)
	cancel()
	if err != nil {
		t.Fatalf("site %s: %v", cfg.Site, err)
	}
	runCtx, stopRun := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			stopRun()
			if err := <-done; err != nil {
				t.Errorf("site %s: run: %v", cfg.Site, err)
			}
		})
	}
	t.Cleanup(stop)
	return &running{Site: s, log: buf, stop: stop}
}

// wait polls cond until it holds, for at most 15 s.
func wait(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func operator(t *testing.T, s *running) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, client.Options{Server: s.URL(), Identity: s.AdminIdentity()})
	if err != nil {
		t.Fatalf("operator of %s: %v", s.Info.Site, err)
	}
	t.Cleanup(c.Close)
	return c
}

// peer is what the site's admin says of site (via the service verb).
func peer(s *running, nc *nats.Conn, site string) (contracts.SitePeer, error) {
	subj, _ := contracts.Svc(s.Info.Site, admin.ServiceName, contracts.VerbSitePeers)
	req := contracts.SitePeersRequest{Header: contracts.NewHeader(contracts.TypeSitePeersRequest), Site: site}
	data, _ := json.Marshal(req)
	msg, err := nc.Request(subj, data, 5*time.Second)
	if err != nil {
		return contracts.SitePeer{}, err
	}
	if code := msg.Header.Get("Nats-Service-Error-Code"); code != "" {
		return contracts.SitePeer{}, errors.New(msg.Header.Get("Nats-Service-Error"))
	}
	var resp contracts.SitePeersResponse
	if err := json.Unmarshal(msg.Data, &resp); err != nil {
		return contracts.SitePeer{}, err
	}
	if len(resp.Peers) != 1 {
		return contracts.SitePeer{}, errors.New("no peer in the answer")
	}
	return resp.Peers[0], nil
}

func serviceConn(t *testing.T, s *running, name string) *nats.Conn {
	t.Helper()
	nc, err := s.dial(name, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func siteConn(t *testing.T, s *running, name string) *nats.Conn {
	t.Helper()
	nc, err := s.connectSite(name)
	if err != nil {
		t.Fatal(err)
	}
	return nc // closed with the site
}

// TestSiteHierarchy links a child site to its parent in one process (two
// embedded servers, a real site token) and checks what the link carries
// and what it does not.
func TestSiteHierarchy(t *testing.T) {
	par := startSite(t, Config{DataDir: t.TempDir(), Site: "PAR", LeafListen: "127.0.0.1:0"})
	if par.LeafURL() == "" || strings.HasSuffix(par.LeafURL(), ":0") {
		t.Fatalf("parent leaf URL %q: want a listening port", par.LeafURL())
	}
	op := operator(t, par)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	token, info, err := op.SitesTokenCreate(ctx, time.Hour, "", "test")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(token, "STS1-") || info.Uses != 1 {
		t.Fatalf("site token %q (%+v): want STS1-... for one use", token, info)
	}

	chdDir := t.TempDir()
	// The child turns its link's compression off (sites on one LAN): off
	// at either end wins over the parent's auto.
	chd := startSite(t, Config{DataDir: chdDir, Site: "CHD", Parent: par.LeafURL(), ParentToken: token, LinkCompression: "off"})
	parNC := serviceConn(t, par, "test-par")
	chdNC := serviceConn(t, chd, "test-chd")

	// The link comes up; each side pins the other's signing key.
	leafKey := chd.parent.leafPublic()
	wait(t, "the parent to see the child joined", func() error {
		p, err := peer(par, parNC, "CHD")
		if err != nil {
			return err
		}
		if p.Role != contracts.PeerChild || p.SigningKey != chd.Info.SiteKey || p.LeafKey != leafKey || !p.Connected {
			return errors.New("not yet: " + jsonString(p))
		}
		return nil
	})
	wait(t, "the child to see its parent", func() error {
		p, err := peer(chd, chdNC, "PAR")
		if err != nil {
			return err
		}
		if p.Role != contracts.PeerParent || p.SigningKey != par.Info.SiteKey || !p.Connected || p.LastContact.IsZero() {
			return errors.New("not yet: " + jsonString(p))
		}
		return nil
	})
	for _, srv := range []*running{par, chd} {
		lz, err := srv.ns.Leafz(nil)
		if err != nil || len(lz.Leafs) != 1 || lz.Leafs[0].Compression != "off" {
			t.Fatalf("site %s's leaf connections: %+v, %v; want one, compression off", srv.Info.Site, lz, err)
		}
	}
	sites, err := op.SitesList(ctx)
	if err != nil || len(sites) != 1 || sites[0].Site != "CHD" {
		t.Fatalf("steward sites list at the parent: got %+v, %v, want CHD", sites, err)
	}

	// The token is nowhere on disk; the parent's pins and the leaf key are 0600.
	for _, f := range []string{"parent.json", "keys/leaf.nk"} {
		st, err := os.Stat(filepath.Join(chdDir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v, want 0600", f, err, st.Mode().Perm())
		}
	}
	secret := token[len("STS1-"):]
	filepath.WalkDir(chdDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, _ := os.ReadFile(path)
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("%s holds the site token", path)
		}
		return nil
	})
	if strings.Contains(chd.log.String(), secret) {
		t.Error("the child's log holds the site token")
	}

	// A request from the parent reaches a child subscriber and the answer
	// comes back, and the other way round.
	echo := func(nc *nats.Conn, subj string) {
		t.Helper()
		sub, err := nc.Subscribe(subj, func(m *nats.Msg) { m.Respond(append([]byte("echo:"), m.Data...)) })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sub.Unsubscribe() })
	}
	ask := func(nc *nats.Conn, subj string) {
		t.Helper()
		wait(t, "an answer on "+subj, func() error {
			m, err := nc.Request(subj, []byte("hi"), time.Second)
			if err != nil {
				return err
			}
			if string(m.Data) != "echo:hi" {
				return errors.New("got " + string(m.Data))
			}
			return nil
		})
	}
	toChild, _ := contracts.SiteSubject("CHD", "PAR", "test.echo")
	toParent, _ := contracts.SiteSubject("PAR", "CHD", "test.echo")
	echo(chdNC, toChild)
	echo(parNC, toParent)
	parSite, chdSite := siteConn(t, par, "test-par-sites"), siteConn(t, chd, "test-chd-sites")
	ask(parSite, toChild)
	ask(chdSite, toParent)

	// What the child may not say at the parent never arrives there.
	t.Run("child cannot publish outside its space", func(t *testing.T) {
		forbidden := []string{
			"steward.PAR.agent.c1.up.test", "steward.PAR.op.admin.up.test", "steward.PAR.svc.steward-admin.test",
			"steward.PAR.site.OTH.test", "steward.PAR.enroll.test", "steward.PAR.event.admin.test", "_INBOX.admin.test",
			"steward.CHD.inbox.site.test", "steward.OTH.site.CHD.test", "steward.OTH.inbox.site.test",
		}
		sentinel, _ := contracts.SiteSubject("PAR", "CHD", "test.sentinel")
		leaks(t, chdNC, parNC, sentinel, forbidden)
	})
	t.Run("child cannot receive outside its space", func(t *testing.T) {
		forbidden := []string{
			"steward.PAR.agent.c1.down.test", "steward.PAR.op.admin.down.test", "steward.PAR.site.CHD.test",
			"steward.OTH.site.PAR.test", "steward.CHD.agent.c1.down.test", "steward.CHD.svc.steward-admin.test",
			"steward.PAR.inbox.site.test", "steward.OTH.inbox.site.test", "_INBOX.admin.test",
		}
		sentinel, _ := contracts.SiteSubject("CHD", "PAR", "test.sentinel")
		leaks(t, parNC, chdNC, sentinel, forbidden)
	})

	t.Run("JetStream stays separate", func(t *testing.T) {
		pjs, _ := jetstream.New(parNC)
		cjs, _ := jetstream.New(chdNC)
		for js, want := range map[jetstream.JetStream]string{pjs: "PAR", cjs: "CHD"} {
			ai, err := js.AccountInfo(ctx)
			if err != nil || ai.Domain != want {
				t.Fatalf("JetStream domain: got %+v, %v, want %s", ai, err, want)
			}
		}
		if _, err := pjs.CreateStream(ctx, jetstream.StreamConfig{Name: "ONLY_PAR", Subjects: []string{"test.onlypar"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := cjs.Stream(ctx, "ONLY_PAR"); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Fatalf("the parent's stream at the child: got %v, want not found", err)
		}
		// Each site's peer bucket is its own.
		for js, want := range map[jetstream.JetStream][2]string{pjs: {"CHD", "PAR"}, cjs: {"PAR", "CHD"}} {
			kv, err := js.KeyValue(ctx, admin.PeerBucket)
			if err != nil {
				t.Fatal(err)
			}
			keys, err := kv.Keys(ctx)
			if err != nil || !slices.Equal(keys, []string{want[0]}) {
				t.Fatalf("peer bucket keys: got %v, %v, want [%s]", keys, err, want[0])
			}
		}
	})

	t.Run("a spent token is refused", func(t *testing.T) {
		oth := startSite(t, Config{DataDir: t.TempDir(), Site: "OTH", Parent: par.LeafURL(), ParentToken: token})
		wait(t, "the child to log the refusal", func() error {
			if !strings.Contains(oth.log.String(), "the parent site refused this site's link") {
				return errors.New("not logged yet")
			}
			return nil
		})
		wait(t, "the parent to log why", func() error {
			if !strings.Contains(par.log.String(), "is spent") {
				return errors.New("not logged yet")
			}
			return nil
		})
		oth.stop()
		if _, err := peer(par, parNC, "OTH"); err == nil {
			t.Fatal("the parent recorded a child that linked with a spent token")
		}
	})

	t.Run("a wrong token is refused", func(t *testing.T) {
		forged, err := contracts.ParseSiteToken(token)
		if err != nil {
			t.Fatal(err)
		}
		forged.Secret = "guess"
		bad := startSite(t, Config{DataDir: t.TempDir(), Site: "BAD", Parent: par.LeafURL(), ParentToken: forged.String()})
		wait(t, "the child to log the refusal", func() error {
			if !strings.Contains(bad.log.String(), "the parent site refused this site's link") {
				return errors.New("not logged yet")
			}
			return nil
		})
		wait(t, "the parent to log why", func() error {
			if !strings.Contains(par.log.String(), "wrong secret") {
				return errors.New("not logged yet")
			}
			return nil
		})
		bad.stop()
		if _, err := peer(par, parNC, "BAD"); err == nil {
			t.Fatal("the parent recorded a child that linked with a wrong token")
		}
	})

	t.Run("a restarted child relinks without the token", func(t *testing.T) {
		chd.stop()
		restarted := time.Now().UTC()
		chd2 := startSite(t, Config{DataDir: chdDir, Site: "CHD"})
		if p := chd2.Parent(); p == nil || p.Site != "PAR" || p.URL != par.LeafURL() {
			t.Fatalf("parent remembered: got %+v, want PAR at %s", p, par.LeafURL())
		}
		if chd2.parent.token != "" || chd2.parent.leafPublic() != leafKey {
			t.Fatal("the restarted child did not link with its leaf key alone")
		}
		chdNC2 := serviceConn(t, chd2, "test-chd2")
		wait(t, "the parent to hear from the restarted child", func() error {
			p, err := peer(par, parNC, "CHD")
			if err != nil {
				return err
			}
			if !p.Connected || p.LastContact.Before(restarted) {
				return errors.New("not yet: " + jsonString(p))
			}
			return nil
		})
		wait(t, "the restarted child to hear from its parent", func() error {
			p, err := peer(chd2, chdNC2, "PAR")
			if err != nil {
				return err
			}
			if !p.Connected || p.LastContact.Before(restarted) {
				return errors.New("not yet: " + jsonString(p))
			}
			return nil
		})
		echo(chdNC2, toChild)
		ask(parSite, toChild)
	})
}

// leaks publishes each forbidden subject on from, then a sentinel, and
// fails if to's subscriber saw any forbidden one before the sentinel. The
// subscriber covers everything (">"), so the link has interest in every
// subject: only the permissions can stop them. Messages of one publisher
// keep their order, so the sentinel arriving means the others would have.
func leaks(t *testing.T, from, to *nats.Conn, sentinel string, forbidden []string) {
	t.Helper()
	got := make(chan string, 4096)
	sub, err := to.Subscribe(">", func(m *nats.Msg) {
		if strings.Contains(m.Subject, "test") {
			select {
			case got <- m.Subject + " " + string(m.Data):
			default:
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	// The subscription reaches the other side of the link first.
	wait(t, "interest across the link", func() error {
		if err := from.Publish(sentinel, []byte("warm-up")); err != nil {
			return err
		}
		from.Flush()
		for {
			select {
			case s := <-got:
				if s == sentinel+" warm-up" {
					return nil
				}
			default:
				return errors.New("the sentinel did not arrive yet")
			}
		}
	})
	for _, subj := range forbidden {
		if err := from.Publish(subj, []byte("forbidden")); err != nil {
			t.Fatal(err)
		}
	}
	from.Publish(sentinel, []byte("last"))
	from.Flush()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case s := <-got:
			switch {
			case s == sentinel+" last":
				return
			case strings.HasSuffix(s, " forbidden"):
				t.Errorf("%s crossed the link", strings.TrimSuffix(s, " forbidden"))
			}
		case <-deadline:
			t.Fatal("the sentinel never arrived")
		}
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestSiteLinkTLS: off loopback the leaf listener is TLS with the site's
// certificate, and the child trusts only the CA pinned from the token.
func TestSiteLinkTLS(t *testing.T) {
	par := startSite(t, Config{DataDir: t.TempDir(), Site: "PAR", LeafListen: "0.0.0.0:0"})
	if !strings.HasPrefix(par.LeafURL(), "tls://127.0.0.1:") {
		t.Fatalf("leaf URL %q: want tls:// on loopback", par.LeafURL())
	}
	op := operator(t, par)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	token, _, err := op.SitesTokenCreate(ctx, time.Hour, "CHD", "")
	if err != nil {
		t.Fatal(err)
	}

	// A token whose CA pin is not the parent's: the TLS handshake fails
	// and nothing is consumed.
	tampered, _ := contracts.ParseSiteToken(token)
	tampered.CA = contracts.CertFingerprint([]byte("another CA"))
	bad := startSite(t, Config{DataDir: t.TempDir(), Site: "CHD", Parent: par.LeafURL(), ParentToken: tampered.String()})
	wait(t, "the child to log the pin mismatch", func() error {
		if !strings.Contains(bad.log.String(), "does not hold the pinned site CA") {
			return errors.New("not logged yet")
		}
		return nil
	})
	bad.stop()

	chd := startSite(t, Config{DataDir: t.TempDir(), Site: "CHD", Parent: par.LeafURL(), ParentToken: token})
	chdNC := serviceConn(t, chd, "test-chd")
	wait(t, "the child to join over TLS", func() error {
		p, err := peer(chd, chdNC, "PAR")
		if err != nil {
			return err
		}
		if !p.Connected || p.Error != "" {
			return errors.New("not yet: " + jsonString(p))
		}
		return nil
	})
}

// TestLinkParent checks what a start makes of --parent and --parent-token.
func TestLinkParent(t *testing.T) {
	kp, _ := nkeys.CreateOperator()
	parKey, _ := kp.PublicKey()
	tok := contracts.SiteToken{Site: "PAR", SiteKey: parKey, ID: "t1", Secret: "a-long-secret-0123456789"}
	other := tok
	other.Site = "OTH"
	dir := t.TempDir()
	if _, _, err := Init(dir, "CHD", true); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, url, token, want string
	}{
		{"a token without a URL", "", tok.String(), "needs --parent"},
		{"a URL without a token, first time", "nats://p:7422", "", "needs --parent-token"},
		{"a damaged token", "nats://p:7422", "STS1-x", "damaged"},
		{"the site's own token", "nats://p:7422", contracts.SiteToken{Site: "CHD", SiteKey: parKey, ID: "t", Secret: "s"}.String(), "its own parent"},
		{"credentials in the URL", "nats://u:p@p:7422", tok.String(), "no credentials"},
		{"another scheme", "http://p:7422", tok.String(), "scheme"},
		{"off loopback without a CA pin", "nats://parent.example.org:7422", tok.String(), "pins no CA"},
	} {
		if _, err := linkParent(dir, "CHD", tt.url, tt.token); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
	if p, err := linkParent(dir, "CHD", "", ""); p != nil || err != nil {
		t.Fatalf("no parent: got %+v, %v, want none", p, err)
	}
	p, err := linkParent(dir, "CHD", "127.0.0.1", tok.String())
	if err != nil {
		t.Fatal(err)
	}
	if p.URL != "nats://127.0.0.1:7422" || p.Site != "PAR" || p.SiteKey != parKey || p.token == "" {
		t.Fatalf("first link: got %+v", p.ParentLink)
	}
	// Later: the URL is remembered, may change; another parent's token is refused.
	p2, err := linkParent(dir, "CHD", "", "")
	if err != nil || p2.URL != p.URL || p2.token != "" || p2.leafPublic() != p.leafPublic() || !p2.Linked.Equal(p.Linked) {
		t.Fatalf("second start: got %+v, %v, want the same link, no token", p2, err)
	}
	p3, err := linkParent(dir, "CHD", "localhost:7500", "")
	if err != nil || p3.URL != "nats://localhost:7500" {
		t.Fatalf("a new URL: got %+v, %v", p3, err)
	}
	if got, _ := ReadParent(dir); got.URL != "nats://localhost:7500" {
		t.Fatalf("parent.json after a new URL: got %+v", got)
	}
	if _, err := linkParent(dir, "CHD", "", other.String()); err == nil || !strings.Contains(err.Error(), "one data dir links to one parent") {
		t.Fatalf("another parent's token: got %v", err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "parent.json"))
	if bytes.Contains(data, []byte(tok.Secret)) || bytes.Contains(data, []byte("STS1-")) {
		t.Fatalf("parent.json holds the token: %s", data)
	}
	// A token does not reach nats.conf either: the remote is on the options.
	info, keys, _ := Load(dir)
	conf, err := RenderServerConfig(info, keys, ServerConfig{Listen: "127.0.0.1:4222", StoreDir: "/js"})
	if err != nil || strings.Contains(conf, "leafnodes") || !strings.Contains(conf, `domain: "CHD"`) {
		t.Fatalf("config: %v\n%s", err, conf)
	}
}

// TestRenderLeafListener: the leaf listener is rendered for a parent (and
// for `steward site nats-config --leaf-listen`), TLS off loopback, with no
// authorization of its own.
func TestRenderLeafListener(t *testing.T) {
	dir := t.TempDir()
	info, keys, err := Init(dir, "PAR", true)
	if err != nil {
		t.Fatal(err)
	}
	files := tlsFiles(dir)
	store := filepath.Join(t.TempDir(), "js")
	if _, err := RenderServerConfig(info, keys, ServerConfig{Listen: "127.0.0.1:4222", StoreDir: store, LeafListen: "0.0.0.0:7422"}); err == nil {
		t.Fatal("a leaf listener off loopback without TLS was rendered")
	}
	if _, err := RenderServerConfig(info, keys, ServerConfig{Listen: "127.0.0.1:4222", StoreDir: store, LeafListen: "nohostport"}); err == nil {
		t.Fatal("a leaf listener without a port was rendered")
	}
	conf, err := RenderServerConfig(info, keys, ServerConfig{Listen: "127.0.0.1:4222", StoreDir: store, LeafListen: "0.0.0.0:7422", LeafTLS: &files})
	if err != nil {
		t.Fatal(err)
	}
	opts := loadConfig(t, conf)
	if opts.LeafNode.Port != 7422 || opts.LeafNode.TLSConfig == nil || opts.LeafNode.Username != "" || opts.LeafNode.Nkey != "" || len(opts.LeafNode.Users) != 0 {
		t.Fatalf("leaf listener: got port %d, TLS %v, own authorization %q/%q/%d, want 7422, TLS, none", opts.LeafNode.Port, opts.LeafNode.TLSConfig != nil, opts.LeafNode.Username, opts.LeafNode.Nkey, len(opts.LeafNode.Users))
	}
	if opts.JetStreamDomain != "PAR" || opts.TLSConfig != nil {
		t.Fatalf("got JetStream domain %q, client TLS %v, want PAR and a plain loopback client listener", opts.JetStreamDomain, opts.TLSConfig != nil)
	}
	if opts.LeafNode.Compression.Mode != server.CompressionS2Auto {
		t.Fatalf("leaf compression %q by default, want %q", opts.LeafNode.Compression.Mode, server.CompressionS2Auto)
	}
	conf, err = RenderServerConfig(info, keys, ServerConfig{Listen: "127.0.0.1:4222", StoreDir: store, LeafListen: "127.0.0.1:0", LinkCompression: "off"})
	if err != nil {
		t.Fatal(err)
	}
	if opts := loadConfig(t, conf); opts.LeafNode.Port != -1 || opts.LeafNode.TLSConfig != nil || opts.LeafNode.Compression.Mode != server.CompressionOff {
		t.Fatalf("leaf listener on loopback port 0, compression off: got port %d, TLS %v, compression %q, want -1 (a free port), plain, off",
			opts.LeafNode.Port, opts.LeafNode.TLSConfig != nil, opts.LeafNode.Compression.Mode)
	}
	if _, err := RenderServerConfig(info, keys, ServerConfig{Listen: "127.0.0.1:4222", StoreDir: store, LeafListen: "127.0.0.1:0", LinkCompression: "zip"}); err == nil || !strings.Contains(err.Error(), "--link-compression") {
		t.Fatalf("link compression zip: got %v, want an error naming --link-compression", err)
	}
}

// TestSiteTokenRevoked: site tokens are listed (never their secrets) and a
// revoked one links no child.
func TestSiteTokenRevoked(t *testing.T) {
	par := startSite(t, Config{DataDir: t.TempDir(), Site: "PAR", LeafListen: "127.0.0.1:0"})
	op := operator(t, par)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	token, info, err := op.SitesTokenCreate(ctx, time.Hour, "CHD", "revoke me")
	if err != nil {
		t.Fatal(err)
	}
	list, err := op.SitesTokenList(ctx)
	if err != nil || len(list) != 1 || list[0].ID != info.ID || list[0].Revoked || list[0].Note != "revoke me" {
		t.Fatalf("site tokens: %+v, %v", list, err)
	}
	if strings.Contains(jsonString(list), strings.TrimPrefix(token, "STS1-")) {
		t.Fatal("the list shows the token")
	}
	if got, err := op.SitesTokenRevoke(ctx, info.ID); err != nil || !got.Revoked {
		t.Fatalf("revoke: %+v, %v", got, err)
	}
	if list, err := op.SitesTokenList(ctx); err != nil || !list[0].Revoked {
		t.Fatalf("after the revoke: %+v, %v", list, err)
	}
	if _, err := op.SitesTokenRevoke(ctx, "no-such-token"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("revoke of nothing: %v, want not_found", err)
	}
	chd := startSite(t, Config{DataDir: t.TempDir(), Site: "CHD", Parent: par.LeafURL(), ParentToken: token})
	wait(t, "the child to be refused, the parent saying why", func() error {
		if !strings.Contains(chd.log.String(), "the parent site refused this site's link") || !strings.Contains(par.log.String(), "revoked") {
			return errors.New("not refused yet")
		}
		return nil
	})
}
