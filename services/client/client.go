// Package client is the Go client of the Steward operator API: what the
// `steward` CLI uses, and what scripts and tests may use. Every call goes to
// the operator's own subjects (steward.<site>.op.<operator>.up.<kind>) and
// replies come to its own inbox; the server allows nothing else.
package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/rpc"
)

// Client talks to a site as one operator.
type Client struct {
	nc       *nats.Conn
	site     string
	operator string
	ca       string // site CA fingerprint the connection trusts, "" when unknown
	// denied ends, its cause saying why, once the site refuses one of
	// this connection's publishes: the site does not take it for the
	// operator it claims, so every call fails at once, saying so, instead
	// of waiting out its timeout. Nil for a wrapped connection (New).
	denied context.Context
}

// ErrIdentityRefused is in the error of every call made on a connection
// the site does not take for the operator it claims (errors.Is), beside
// its CodePermissionDenied: not a permission the operator lacks, but no
// operator at all.
var ErrIdentityRefused = errors.New("the site does not take this identity for its operator")

type identityRefused struct{ err *contracts.Error }

func (e identityRefused) Error() string   { return e.err.Error() }
func (e identityRefused) Unwrap() []error { return []error{e.err, ErrIdentityRefused} }

// Options say where and as whom to connect.
type Options struct {
	Server   string // nats://host:port (several, comma-separated, for a cluster)
	Identity string // path of the operator identity file
	Site     string // the site code when the identity file does not say it; else it must agree
	Operator string // the operator name when the identity file does not say it; else it must agree
	// CA is the site CA certificate file (<data>/tls/ca.crt). Without it
	// the fingerprint in the identity file is pinned. TLS is required for
	// any server that is not on loopback.
	CA      string
	Timeout time.Duration
}

// Connect reads the identity and connects to the site.
func Connect(ctx context.Context, o Options) (*Client, error) {
	id, err := ReadIdentity(o.Identity)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		flag, env, given string
		have             *string
	}{{"--site", "STEWARD_SITE", o.Site, &id.Site}, {"--operator", "STEWARD_OPERATOR", o.Operator, &id.Operator}} {
		switch {
		case f.given == "":
		case *f.have == "":
			*f.have = f.given
		case *f.have != f.given:
			return nil, fmt.Errorf("identity %s is for %s %q, but %s (or env %s) says %q: drop it, or use that identity", o.Identity, strings.TrimPrefix(f.flag, "--"), *f.have, f.flag, f.env, f.given)
		}
	}
	if id.Site == "" || id.Operator == "" {
		return nil, fmt.Errorf("identity %s does not say its site and operator: pass --site and --operator", o.Identity)
	}
	kp, err := id.KeyPair()
	if err != nil {
		return nil, err
	}
	pub, _ := kp.PublicKey()
	inbox, err := contracts.Inbox(id.Operator)
	if err != nil {
		return nil, fmt.Errorf("operator name: %w", err)
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	tlsOpt, caFP, err := siteTLS(o.Server, o.CA, id.CA)
	if err != nil {
		return nil, err
	}
	denied, deny := context.WithCancelCause(context.Background())
	nc, err := nats.Connect(o.Server,
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				deny(identityRefused{contracts.Errorf(contracts.CodePermissionDenied,
					"site %s does not take this identity for operator %s (%v): an administrator adds it with `steward admins add %s --public-key %s`, or --identity names another operator's file",
					id.Site, id.Operator, err, id.Operator, pub)})
			}
		}),
		nats.Name("steward-cli "+id.Operator),
		nats.Nkey(pub, kp.Sign),
		nats.CustomInboxPrefix(inbox),
		nats.Timeout(o.Timeout),
		nats.NoReconnect(),
		tlsOpt,
	)
	if err != nil {
		if errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
			return nil, fmt.Errorf("connect to %s as %s: site %s refused this identity (the operator was deleted, or its key revoked or never added; or the server is another site's): %w", o.Server, id.Operator, id.Site, err)
		}
		err = explainTLS(err, o.CA != "" || id.CA != "")
		return nil, fmt.Errorf("connect to %s as %s: %w", o.Server, id.Operator, err)
	}
	c := New(nc, id.Site, id.Operator)
	c.ca = caFP
	c.denied = denied
	return c, nil
}

// siteTLS is the connection's TLS option: the CA file as the only root
// (host names checked), else the pinned fingerprint (contracts.
// VerifySiteChain), else the system roots. TLS is required unless every
// server is on loopback, where the site's own embedded server listens in
// plain text; there the configuration is used only if the server asks for
// TLS. It also returns the fingerprint of the CA trusted, when known.
func siteTLS(servers, caFile, pin string) (nats.Option, string, error) {
	var cfg *tls.Config
	fp := pin
	switch {
	case caFile != "":
		data, err := os.ReadFile(caFile)
		if err != nil {
			return nil, "", fmt.Errorf("site CA: %w", err)
		}
		pool := x509.NewCertPool()
		block, _ := pem.Decode(data)
		if block == nil || !pool.AppendCertsFromPEM(data) {
			return nil, "", fmt.Errorf("site CA %s holds no PEM certificate", caFile)
		}
		fp = contracts.CertFingerprint(block.Bytes)
		cfg = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	case pin != "":
		cfg = &tls.Config{
			MinVersion: tls.VersionTLS12,
			// The chain is checked against the pin below instead.
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				_, err := contracts.VerifySiteChain(pin, cs.PeerCertificates)
				return err
			},
		}
	}
	secure := !contracts.LoopbackOnly(servers)
	return func(o *nats.Options) error {
		if cfg != nil {
			o.TLSConfig = cfg
		}
		if secure {
			o.Secure = true
		}
		return nil
	}, fp, nil
}

// explainTLS adds the next step to a TLS failure.
func explainTLS(err error, trusted bool) error {
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.Is(err, nats.ErrSecureConnWanted):
		return fmt.Errorf("%w (the server does not offer TLS, which Steward requires off loopback)", err)
	case errors.As(err, &unknown) && !trusted:
		return fmt.Errorf("%w (pass the site CA: --ca <data>/tls/ca.crt, or env STEWARD_CA)", err)
	}
	return err
}

// New wraps an existing connection of operator at site.
func New(nc *nats.Conn, site, operator string) *Client {
	return &Client{nc: nc, site: site, operator: operator}
}

// CA is the fingerprint of the site CA the connection trusts ("" when it
// trusts none in particular: a loopback server without TLS).
func (c *Client) CA() string { return c.ca }

// Site is the site code this client talks to.
func (c *Client) Site() string { return c.site }

// Operator is the operator this client acts as.
func (c *Client) Operator() string { return c.operator }

// Conn is the underlying connection.
func (c *Client) Conn() *nats.Conn { return c.nc }

// Close closes the connection.
func (c *Client) Close() { c.nc.Close() }

// call sends req on the operator's subject for kind and decodes the answer.
func (c *Client) call(ctx context.Context, kind string, req, resp any) error {
	subj, err := contracts.OpUp(c.site, c.operator, kind)
	if err != nil {
		return err
	}
	if c.denied == nil {
		return rpc.Call(ctx, c.nc, subj, req, resp)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(c.denied, func() { cancel(context.Cause(c.denied)) })()
	err = rpc.Call(ctx, c.nc, subj, req, resp)
	if refused := context.Cause(c.denied); refused != nil && context.Cause(ctx) == refused {
		return refused
	}
	return err
}
