package contracts

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// The site's TLS trust: every site creates its own certificate authority at
// its first start and signs its servers' certificates with it. Agents learn
// the CA from the enrollment token as a fingerprint and pin it: a server is
// the site's when the chain it presents holds the pinned CA and the CA signed
// the server's certificate. The site CA signs nothing but the site's
// servers, so the pin, not a host name, is what a connection is checked
// against (agents may reach the site by any name or address).

// fingerprintPrefix names the hash of a fingerprint, so another can follow.
const fingerprintPrefix = "sha256:"

// CertFingerprint is the fingerprint of a DER certificate as tokens and
// identity files carry it: "sha256:" and the lower-case hex SHA-256 of the
// DER bytes (what `openssl x509 -fingerprint -sha256` shows, without the
// colons).
func CertFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return fingerprintPrefix + hex.EncodeToString(sum[:])
}

// ValidFingerprint checks that s has the form CertFingerprint makes.
func ValidFingerprint(s string) error {
	h, ok := strings.CutPrefix(s, fingerprintPrefix)
	if !ok {
		return fmt.Errorf("fingerprint %q: must start with %q", s, fingerprintPrefix)
	}
	if len(h) != 2*sha256.Size || strings.ToLower(h) != h {
		return fmt.Errorf("fingerprint %q: want %d lower-case hex digits after %q", s, 2*sha256.Size, fingerprintPrefix)
	}
	if _, err := hex.DecodeString(h); err != nil {
		return fmt.Errorf("fingerprint %q: %w", s, err)
	}
	return nil
}

// ErrCANotPinned is returned by VerifySiteChain when the server's chain does
// not hold the pinned CA: the server is not the site the client trusts.
var ErrCANotPinned = errors.New("the server's certificate chain does not hold the pinned site CA")

// VerifySiteChain checks a server's certificate chain (leaf first, as TLS
// presents it) against the site CA fingerprint pin and returns the
// fingerprint of the CA that signed the leaf. With pin empty (trust on first
// use) the chain's own last certificate, a self-signed CA, is taken as the
// site CA; the caller then pins the fingerprint returned.
func VerifySiteChain(pin string, chain []*x509.Certificate) (string, error) {
	if len(chain) == 0 {
		return "", errors.New("the server presented no certificate")
	}
	var ca *x509.Certificate
	if pin != "" {
		for _, c := range chain {
			if CertFingerprint(c.Raw) == pin {
				ca = c
				break
			}
		}
		if ca == nil {
			return "", fmt.Errorf("%w (%s): this server is not the site this client trusts, or the site's CA was replaced", ErrCANotPinned, pin)
		}
	} else {
		ca = chain[len(chain)-1]
		if ca.CheckSignatureFrom(ca) != nil {
			return "", errors.New("the server's certificate chain does not end in a self-signed site CA")
		}
	}
	if !ca.IsCA || !ca.BasicConstraintsValid {
		return "", fmt.Errorf("the pinned certificate %s is not a certificate authority", CertFingerprint(ca.Raw))
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		if c != ca {
			inter.AddCert(c)
		}
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, err := chain[0].Verify(opts); err != nil {
		return "", fmt.Errorf("the server's certificate is not signed by the site CA %s: %w", CertFingerprint(ca.Raw), err)
	}
	return CertFingerprint(ca.Raw), nil
}

// LoopbackOnly says whether every URL of a comma-separated NATS server list
// names a loopback host (localhost, 127.0.0.0/8, ::1).
func LoopbackOnly(servers string) bool {
	for _, s := range strings.Split(servers, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		u, err := url.Parse(s)
		if err != nil {
			return false
		}
		h := u.Hostname()
		if ip := net.ParseIP(h); h != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return false
		}
	}
	return true
}
