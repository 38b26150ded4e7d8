package site

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
)

func TestInitMakesCA(t *testing.T) {
	dir := t.TempDir()
	info, _, err := Init(dir, "LAB", true, "nats", "nats-1", "10.1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	f := tlsFiles(dir)
	for path, mode := range map[string]os.FileMode{f.CA: 0o644, f.CAKey: 0o600, f.Cert: 0o644, f.Key: 0o600} {
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != mode {
			t.Fatalf("%s: %v mode %v, want %v", path, err, st.Mode().Perm(), mode)
		}
	}
	fp, err := CAFingerprint(dir)
	if err != nil || fp != info.CAFingerprint || contracts.ValidFingerprint(fp) != nil {
		t.Fatalf("got CA fingerprint %q (%v), info says %q; want the same valid fingerprint", fp, err, info.CAFingerprint)
	}
	id, err := client.ReadIdentity(filepath.Join(dir, "admin.nk"))
	if err != nil || id.CA != fp {
		t.Fatalf("admin.nk: got CA %q (%v), want %s", id.CA, err, fp)
	}

	cert := serverCert(t, dir)
	for _, h := range []string{"nats", "nats-1", "10.1.2.3", "localhost", "127.0.0.1", "::1"} {
		if err := cert.VerifyHostname(h); err != nil {
			t.Errorf("server certificate: got %v for %s, want it named", err, h)
		}
	}
	if _, err := contracts.VerifySiteChain(fp, chain(t, dir)); err != nil {
		t.Fatalf("the server chain does not verify against the site CA: %v", err)
	}

	// A later start keeps the CA and the certificate while it covers what
	// is asked; a new host gets a new certificate naming old and new.
	info2, _, err := Init(dir, "LAB", true, "nats")
	if err != nil || info2.CAFingerprint != fp {
		t.Fatalf("second start: got CA %q (%v), want %s kept", info2.CAFingerprint, err, fp)
	}
	if again := serverCert(t, dir); !again.Equal(cert) {
		t.Fatal("second start re-issued a server certificate that covered every host")
	}
	if _, _, err := Init(dir, "LAB", true, "nats-4"); err != nil {
		t.Fatal(err)
	}
	renewed := serverCert(t, dir)
	if renewed.Equal(cert) {
		t.Fatal("a new host did not re-issue the server certificate")
	}
	for _, h := range []string{"nats", "nats-1", "10.1.2.3", "nats-4"} {
		if err := renewed.VerifyHostname(h); err != nil {
			t.Errorf("renewed certificate: got %v for %s, want it named", err, h)
		}
	}

	// A CA certificate without its key is refused: agents pin that CA.
	os.Remove(f.CAKey)
	if _, _, err := Init(dir, "LAB", true); err == nil || !strings.Contains(err.Error(), "restore the CA key") {
		t.Fatalf("got %v, want a missing CA key refused", err)
	}
}

func TestLoadIsReadOnly(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "steward site init") {
		t.Fatalf("got %v, want an uninitialised data dir to name steward site init", err)
	}
	info, keys, err := Init(dir, "LAB", true)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	got, gotKeys, err := Load(dir)
	if err != nil {
		t.Fatalf("Load of a read-only data dir: %v", err)
	}
	p1, _ := keys.Service.PublicKey()
	p2, _ := gotKeys.Service.PublicKey()
	if got != info || p1 != p2 {
		t.Fatalf("got %+v key %s, want %+v key %s", got, p2, info, p1)
	}
}

// TestServerConfig loads the rendered configurations into nats-server, runs
// the TLS one and connects as an agent would: pinning the CA from the
// token it accepts the server, pinning another CA it refuses it.
func TestServerConfig(t *testing.T) {
	dir := t.TempDir()
	info, keys, err := Init(dir, "LAB", true)
	if err != nil {
		t.Fatal(err)
	}
	files := tlsFiles(dir)
	store := filepath.Join(dir, "js")

	if _, err := RenderServerConfig(info, keys, ServerConfig{Listen: "0.0.0.0:4222", StoreDir: store}); err == nil {
		t.Fatal("rendered a plain-text listener off loopback, want it refused")
	}
	cluster, err := RenderServerConfig(info, keys, ServerConfig{StoreDir: store, TLS: &files,
		Cluster: &ClusterConfig{Routes: []string{"nats-1:6222", "nats-2:6222", "nats-3:6222"}}})
	if err != nil {
		t.Fatal(err)
	}
	opts := loadConfig(t, cluster)
	if opts.Cluster.Name != "steward-LAB" || len(opts.Routes) != 3 || opts.Cluster.TLSConfig == nil ||
		opts.Cluster.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert || opts.TLSConfig == nil || !opts.SyncAlways {
		t.Fatalf("cluster config: got cluster %q, %d routes, route TLS %v, client TLS %v, sync always %v; want steward-LAB, 3, mutual, on, true",
			opts.Cluster.Name, len(opts.Routes), opts.Cluster.TLSConfig != nil, opts.TLSConfig != nil, opts.SyncAlways)
	}
	issuer, _ := keys.Callout.PublicKey()
	if opts.AuthCallout == nil || opts.AuthCallout.Issuer != issuer || len(opts.AuthCallout.AuthUsers) != 2 {
		t.Fatalf("cluster config: got auth callout %+v, want issuer %s with the two service keys", opts.AuthCallout, issuer)
	}

	conf, err := RenderServerConfig(info, keys, ServerConfig{Listen: "127.0.0.1:-1", StoreDir: store, TLS: &files})
	if err != nil {
		t.Fatal(err)
	}
	opts = loadConfig(t, conf)
	opts.NoLog, opts.NoSigs = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	url := ns.ClientURL()

	pinned := func(pin string) nats.Option {
		return nats.Secure(&tls.Config{InsecureSkipVerify: true, VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := contracts.VerifySiteChain(pin, cs.PeerCertificates)
			return err
		}})
	}
	svc := func(opts ...nats.Option) (*nats.Conn, error) {
		pub, _ := keys.Service.PublicKey()
		return nats.Connect(url, append(opts, nats.Nkey(pub, keys.Service.Sign), nats.NoReconnect())...)
	}
	nc, err := svc(pinned(info.CAFingerprint))
	if err != nil {
		t.Fatalf("pinning the site CA: got %v, want connected", err)
	}
	if !nc.TLSRequired() {
		t.Fatal("connected without TLS")
	}
	nc.Close()

	other := contracts.CertFingerprint([]byte("another CA"))
	if _, err := svc(pinned(other)); !errors.Is(err, contracts.ErrCANotPinned) {
		t.Fatalf("pinning another CA: got %v, want %v", err, contracts.ErrCANotPinned)
	}
	if _, err := svc(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("trusting only the system roots: got %v, want a certificate error", err)
	}
	ctls, err := clientTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := svc(nats.Secure(ctls)); err != nil {
		t.Fatalf("the services' TLS (site CA as root, host name checked): %v", err)
	} else {
		nc.Close()
	}
}

func loadConfig(t *testing.T, conf string) *server.Options {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server refuses the rendered config: %v\n%s", err, conf)
	}
	return opts
}

func chain(t *testing.T, dir string) []*x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(tlsFiles(dir).Cert, tlsFiles(dir).Key)
	if err != nil {
		t.Fatal(err)
	}
	var out []*x509.Certificate
	for _, der := range pair.Certificate {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if len(out) != 2 {
		t.Fatalf("server.crt holds %d certificates, want the server's and the CA's", len(out))
	}
	return out
}

func serverCert(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	return chain(t, dir)[0]
}
