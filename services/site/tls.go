package site

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward/contracts"
)

// The site's TLS material, under <data>/tls (0700):
//
//	ca.crt       the site CA certificate (PEM); its fingerprint is in every
//	             enrollment token and in admin.nk
//	ca.key       the CA's private key (0600; PKCS #8 PEM)
//	server.crt   the servers' certificate, then the CA (the chain servers present)
//	server.key   its private key (0600)
//
// The CA is made once, at the first start, and lives ten years; the server
// certificate is issued again whenever it does not name every host asked
// for, was not signed by this CA, or has less than a month left.
const (
	caValidity     = 10 * 365 * 24 * time.Hour
	serverValidity = 825 * 24 * time.Hour // the longest browsers ever accepted
	renewBefore    = 30 * 24 * time.Hour
)

// TLSFiles are the paths of the site's TLS material.
type TLSFiles struct {
	CA, CAKey, Cert, Key string
}

// TLSPaths are the paths of the TLS material in data dir dir.
func TLSPaths(dir string) TLSFiles { return tlsFiles(dir) }

// tlsFiles are the paths under data dir dir.
func tlsFiles(dir string) TLSFiles {
	d := filepath.Join(dir, "tls")
	return TLSFiles{
		CA:    filepath.Join(d, "ca.crt"),
		CAKey: filepath.Join(d, "ca.key"),
		Cert:  filepath.Join(d, "server.crt"),
		Key:   filepath.Join(d, "server.key"),
	}
}

// defaultHosts are in every server certificate: loopback and this machine.
func defaultHosts() []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	return hosts
}

// ensureCA loads the site CA, or creates it when there is none.
func ensureCA(dir, site string) (*x509.Certificate, crypto.Signer, error) {
	f := tlsFiles(dir)
	if err := os.MkdirAll(filepath.Dir(f.CA), 0o700); err != nil {
		return nil, nil, fmt.Errorf("tls dir: %w", err)
	}
	cert, key, err := loadPair(f.CA, f.CAKey)
	if err == nil {
		if !cert.IsCA {
			return nil, nil, fmt.Errorf("%s is not a certificate authority", f.CA)
		}
		return cert, key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	if _, err := os.Stat(f.CA); err == nil {
		return nil, nil, fmt.Errorf("%s exists but %s is missing: restore the CA key (agents pin this CA)", f.CA, f.CAKey)
	}
	key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Steward site " + site + " CA", Organization: []string{"Steward site " + site}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("create the site CA: %w", err)
	}
	// The key first: a CA certificate without its key is refused above.
	if err := writeKey(f.CAKey, key); err != nil {
		return nil, nil, err
	}
	if err := writeFileAtomic(f.CA, pemCert(der), 0o644); err != nil {
		return nil, nil, err
	}
	cert, err = x509.ParseCertificate(der)
	return cert, key, err
}

// ensureServerCert issues the servers' certificate when there is none, or
// when the present one does not cover hosts, was signed by another CA, or
// expires within renewBefore. A new certificate names the union of the old
// one's names, the default hosts and hosts.
func ensureServerCert(dir, site string, ca *x509.Certificate, caKey crypto.Signer, hosts []string) error {
	f := tlsFiles(dir)
	want := slices.Concat(defaultHosts(), hosts)
	// Anything wrong with the present pair (missing, damaged, a key that
	// does not match) is mended by issuing a new one: nobody pins it.
	if cert, _, err := loadPair(f.Cert, f.Key); err == nil && cert.CheckSignatureFrom(ca) == nil {
		if time.Until(cert.NotAfter) > renewBefore && covers(cert, want) {
			return nil
		}
		want = append(want, cert.DNSNames...)
		for _, ip := range cert.IPAddresses {
			want = append(want, ip.String())
		}
	}
	var dns []string
	var ips []net.IP
	for _, h := range want {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
		} else if !slices.Contains(dns, strings.ToLower(h)) {
			dns = append(dns, strings.ToLower(h))
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "steward-" + site, Organization: []string{"Steward site " + site}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(serverValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		// Servers present it to clients, and to each other on cluster
		// routes, where each side is also the other's client.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    dns,
		IPAddresses: ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return fmt.Errorf("issue the server certificate: %w", err)
	}
	if err := writeKey(f.Key, key); err != nil {
		return err
	}
	return writeFileAtomic(f.Cert, append(pemCert(der), pemCert(ca.Raw)...), 0o644)
}

// covers says whether cert names every host.
func covers(cert *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if h = strings.TrimSpace(h); h != "" && cert.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// CAFingerprint is the fingerprint of the site CA in data dir dir, as
// enrollment tokens carry it.
func CAFingerprint(dir string) (string, error) {
	cert, err := loadCert(tlsFiles(dir).CA)
	if err != nil {
		return "", err
	}
	return contracts.CertFingerprint(cert.Raw), nil
}

// clientTLS is the TLS configuration of the services' own connections: the
// site CA as the only root, host names checked.
func clientTLS(dir string) (*tls.Config, error) {
	ca, err := loadCert(tlsFiles(dir).CA)
	if err != nil {
		return nil, fmt.Errorf("site CA: %w (run `steward site init --data %s`)", err, dir)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

func loadCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cert, nil
}

// loadPair reads a certificate (the first of its file) and its key;
// fs.ErrNotExist when either file is absent.
func loadPair(certPath, keyPath string) (*x509.Certificate, crypto.Signer, error) {
	cert, err := loadCert(certPath)
	if err != nil {
		return nil, nil, err
	}
	data, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, nil, fmt.Errorf("%s holds no PEM key", keyPath)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, nil, fmt.Errorf("%s: not a signing key", keyPath)
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("%s does not belong to %s", keyPath, certPath)
	}
	return cert, signer, nil
}

func writeKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}

func pemCert(der []byte) []byte {
	var b bytes.Buffer
	_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	return b.Bytes()
}

// serial is a random 128-bit certificate serial number.
func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n
}
