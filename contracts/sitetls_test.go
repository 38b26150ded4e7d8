package contracts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestCertFingerprint(t *testing.T) {
	// echo -n hello | sha256sum
	const want = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	if got := CertFingerprint([]byte("hello")); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if err := ValidFingerprint(want); err != nil {
		t.Fatalf("ValidFingerprint(%s): %v", want, err)
	}
	for _, bad := range []string{"", "sha256:", want[7:], "SHA256:" + want[7:], strings.ToUpper(want), want + "00", want[:70] + "zz", "sha1:" + want[7:]} {
		if ValidFingerprint(bad) == nil {
			t.Errorf("ValidFingerprint(%q): got nil, want an error", bad)
		}
	}
}

// testCA makes a CA and a server certificate it signs.
func testCA(t *testing.T, name string) (ca, leaf *x509.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ = x509.ParseCertificate(der)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ltmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "server"}, DNSNames: []string{"nats"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err = x509.CreateCertificate(rand.Reader, ltmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ = x509.ParseCertificate(der)
	return ca, leaf
}

func TestVerifySiteChain(t *testing.T) {
	ca, leaf := testCA(t, "site CA")
	other, otherLeaf := testCA(t, "another CA")
	pin := CertFingerprint(ca.Raw)

	tests := []struct {
		name    string
		pin     string
		chain   []*x509.Certificate
		wantErr string // "" for success
	}{
		{"pinned CA in the chain", pin, []*x509.Certificate{leaf, ca}, ""},
		{"first use takes the chain's CA", "", []*x509.Certificate{leaf, ca}, ""},
		{"pinned CA absent", pin, []*x509.Certificate{otherLeaf, other}, "does not hold the pinned site CA"},
		{"pinned CA present but did not sign the leaf", pin, []*x509.Certificate{otherLeaf, ca}, "not signed by the site CA"},
		{"leaf alone, pinned", pin, []*x509.Certificate{leaf}, "does not hold the pinned site CA"},
		{"first use without a CA in the chain", "", []*x509.Certificate{leaf}, "self-signed site CA"},
		{"pin names the leaf, not a CA", CertFingerprint(leaf.Raw), []*x509.Certificate{leaf, ca}, "not a certificate authority"},
		{"no certificate", pin, nil, "no certificate"},
	}
	for _, tt := range tests {
		got, err := VerifySiteChain(tt.pin, tt.chain)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: got %v, want success", tt.name, err)
		case tt.wantErr == "" && got != pin:
			t.Errorf("%s: got CA %s, want %s", tt.name, got, pin)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: got %v, want an error containing %q", tt.name, err, tt.wantErr)
		}
	}
	if _, err := VerifySiteChain(pin, []*x509.Certificate{otherLeaf, other}); !errors.Is(err, ErrCANotPinned) {
		t.Errorf("got %v, want ErrCANotPinned", err)
	}
}
