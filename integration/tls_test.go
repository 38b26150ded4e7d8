package integration

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/agent"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
	"github.com/stewardhq/steward/services/site"
)

// TestSiteTLS runs a site listening beyond loopback, so with TLS: the
// token carries the site CA's fingerprint; an agent with that token
// enrolls over TLS and keeps the pin; an agent whose token pins another CA
// refuses the server and never sends its enrollment; the CLI connects with
// the fingerprint from admin.nk, or with the CA file.
func TestSiteTLS(t *testing.T) {
	dir := t.TempDir()
	_, port, _ := net.SplitHostPort(freePort(t))
	s, err := site.New(context.Background(), site.Config{DataDir: dir, Listen: "0.0.0.0:" + port, Site: "TLS1", SiteSet: true, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	if !strings.HasPrefix(s.URL(), "tls://127.0.0.1:") {
		t.Fatalf("got site URL %s, want tls://127.0.0.1:%s", s.URL(), port)
	}
	fp, err := site.CAFingerprint(dir)
	if err != nil {
		t.Fatal(err)
	}

	// The CLI pins the CA named in admin.nk (nats:// upgrades to TLS when
	// the server asks for it).
	url := "nats://127.0.0.1:" + port
	var op *client.Client
	wait(t, 20*time.Second, "the operator to connect and create a token", func() bool {
		c, err := client.Connect(context.Background(), client.Options{Server: url, Identity: s.AdminIdentity()})
		if err != nil {
			return false
		}
		if _, _, err := c.TokensCreate(ctx(t), time.Hour, 1, "probe"); err != nil {
			c.Close()
			return false
		}
		op = c
		return true
	})
	defer op.Close()
	if op.CA() != fp {
		t.Fatalf("operator trusts CA %q, want %s", op.CA(), fp)
	}
	if !op.Conn().TLSRequired() {
		t.Fatal("the operator connected without TLS")
	}
	// With the CA file, host names are checked: localhost is in the
	// certificate.
	byFile, err := client.Connect(ctx(t), client.Options{Server: "tls://localhost:" + port, Identity: s.AdminIdentity(), CA: filepath.Join(dir, "tls", "ca.crt")})
	if err != nil {
		t.Fatalf("connect with --ca: %v", err)
	}
	byFile.Close()

	raw, _, err := op.TokensCreate(ctx(t), time.Hour, 2, "tls")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := contracts.ParseEnrollmentToken(raw)
	if err != nil {
		t.Fatal(err)
	}
	if tok.CA != fp {
		t.Fatalf("token carries CA %q, want %s", tok.CA, fp)
	}

	good := startAgent(t, url, raw, t.TempDir(), "good")
	wait(t, 20*time.Second, "the agent with the site's CA to enroll", func() bool {
		return good.Status().State == agent.StateConnected
	})
	if id, _ := good.Identity(); id.CAFingerprint != fp {
		t.Fatalf("enrolled identity pins CA %q, want %s", id.CAFingerprint, fp)
	}

	// The same secret with another CA pinned: the agent refuses the server,
	// so the token is never spent.
	forged := tok
	forged.CA = contracts.CertFingerprint([]byte("another site's CA"))
	bad := startAgent(t, url, forged.String(), t.TempDir(), "bad")
	wait(t, 20*time.Second, "the agent pinning another CA to refuse the server", func() bool {
		return strings.Contains(bad.Status().Message, "pinned site CA")
	})
	if st := bad.Status(); st.State != agent.StateEnrolling || st.ClientID != "" {
		t.Fatalf("agent pinning another CA: got state %s client %q, want still enrolling", st.State, st.ClientID)
	}
	list, err := op.TokensList(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range list {
		if info.ID == tok.ID && info.Used != 1 {
			t.Fatalf("token used %d times, want 1 (only the good agent)", info.Used)
		}
	}
}
