package site

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
)

// The data directory:
//
//	<data>/
//	  site.json        site code, creation time, bootstrap administrator key
//	  admin.nk         bootstrap Full Administrator identity (0600)
//	  nats.conf        the embedded server's configuration, rewritten each start
//	  parent.json      a child site's parent, pinned from the site token (0600; parent.go)
//	  keys/            (0700)
//	    site.nk        site signing key: signs enrollments, later policy (0600)
//	    callout.nk     auth callout issuer (account key) (0600)
//	    service.nk     services' NKey in the STEWARD account (0600)
//	    system.nk      services' NKey in the system account (0600)
//	    seal.xk        site curve key: seals account secrets (0600); losing it
//	                   loses every account's secret, so back it up with the rest
//	    leaf.nk        a child site's leaf key, its link to the parent (0600)
//	  tls/             (0700) the site CA and the servers' certificate (tls.go)
//	  jetstream/       JetStream file store
//
// Seeds and private keys are only ever written with mode 0600 and never
// logged.

// Info is the site's identity, kept in site.json.
type Info struct {
	Site           string    `json:"site"`
	Created        time.Time `json:"created"`
	SiteKey        string    `json:"siteKey"`
	BootstrapAdmin string    `json:"bootstrapAdmin"`
	// CAFingerprint is the fingerprint of tls/ca.crt (not kept in
	// site.json: the certificate is the truth); "" when the data dir has no
	// CA (a site from before TLS, read by Load).
	CAFingerprint string `json:"-"`
}

// Keys are the site's key pairs.
type Keys struct {
	Site    nkeys.KeyPair
	Callout nkeys.KeyPair
	Service nkeys.KeyPair
	System  nkeys.KeyPair
	Seal    nkeys.KeyPair // curve (X...): seals site account secrets
}

// siteKeys are the key files under <data>/keys and how to make each.
var siteKeys = []struct {
	name string
	dst  func(*Keys) *nkeys.KeyPair
	make func() (nkeys.KeyPair, error)
}{
	{"site.nk", func(k *Keys) *nkeys.KeyPair { return &k.Site }, nkeys.CreateOperator},
	{"callout.nk", func(k *Keys) *nkeys.KeyPair { return &k.Callout }, nkeys.CreateAccount},
	{"service.nk", func(k *Keys) *nkeys.KeyPair { return &k.Service }, nkeys.CreateUser},
	{"system.nk", func(k *Keys) *nkeys.KeyPair { return &k.System }, nkeys.CreateUser},
	{"seal.xk", func(k *Keys) *nkeys.KeyPair { return &k.Seal }, nkeys.CreateCurveKeys},
}

// Init prepares dir for site code: on the first start it creates the keys,
// the site CA, site.json and admin.nk; later starts load them. siteSet says
// whether the code was given explicitly, in which case it must match the
// stored one. The servers' certificate names hosts besides loopback and this
// machine's name, and is issued again when it does not.
func Init(dir, code string, siteSet bool, hosts ...string) (Info, Keys, error) {
	if err := contracts.ValidName(code); err != nil {
		return Info{}, Keys{}, fmt.Errorf("site code: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o700); err != nil {
		return Info{}, Keys{}, fmt.Errorf("data dir %s cannot be created: %w", dir, err)
	}
	if err := checkWritable(dir); err != nil {
		return Info{}, Keys{}, err
	}
	var keys Keys
	var err error
	for _, k := range siteKeys {
		if *k.dst(&keys), err = loadOrCreateKey(filepath.Join(dir, "keys", k.name), k.make); err != nil {
			return Info{}, Keys{}, err
		}
	}
	infoPath := filepath.Join(dir, "site.json")
	data, err := os.ReadFile(infoPath)
	var info Info
	switch {
	case err == nil:
		if info, err = parseInfo(dir, data, keys); err != nil {
			return Info{}, Keys{}, err
		}
		if siteSet && code != info.Site {
			return Info{}, Keys{}, fmt.Errorf("data dir %s belongs to site %s, not %s (use another --data for a new site)", dir, info.Site, code)
		}
		code = info.Site
	case !errors.Is(err, fs.ErrNotExist):
		return Info{}, Keys{}, fmt.Errorf("read %s: %w", infoPath, err)
	}
	ca, caKey, err := ensureCA(dir, code)
	if err != nil {
		return Info{}, Keys{}, err
	}
	if err := ensureServerCert(dir, code, ca, caKey, hosts); err != nil {
		return Info{}, Keys{}, err
	}
	caFP := contracts.CertFingerprint(ca.Raw)
	if info.Site != "" {
		info.CAFingerprint = caFP
		return info, keys, nil
	}

	// First start: the bootstrap administrator, then site.json last, so an
	// interrupted first start is simply redone.
	adminPath := filepath.Join(dir, "admin.nk")
	admin, err := nkeys.CreateUser()
	if err != nil {
		return Info{}, Keys{}, err
	}
	seed, _ := admin.Seed()
	_ = os.Remove(adminPath) // left by an interrupted first start
	if err := client.WriteIdentity(adminPath, client.Identity{Site: code, Operator: "admin", Seed: seed, CA: caFP}); err != nil {
		return Info{}, Keys{}, err
	}
	adminPub, _ := admin.PublicKey()
	sitePub, _ := keys.Site.PublicKey()
	info = Info{Site: code, Created: time.Now().UTC(), SiteKey: sitePub, BootstrapAdmin: adminPub}
	data, _ = json.MarshalIndent(info, "", "  ")
	if err := writeFileAtomic(infoPath, data, 0o644); err != nil {
		return Info{}, Keys{}, err
	}
	info.CAFingerprint = caFP
	return info, keys, nil
}

// Load reads an initialised site from dir without writing anything (the
// data dir may be read-only): what services run against an external NATS
// need. A site that was never initialised is an error naming `steward site
// init`.
func Load(dir string) (Info, Keys, error) {
	infoPath := filepath.Join(dir, "site.json")
	data, err := os.ReadFile(infoPath)
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, Keys{}, fmt.Errorf("data dir %s holds no site: initialise it first with `steward site init --data %s`", dir, dir)
	}
	if err != nil {
		return Info{}, Keys{}, fmt.Errorf("read %s: %w", infoPath, err)
	}
	var keys Keys
	for _, k := range siteKeys {
		path := filepath.Join(dir, "keys", k.name)
		raw, err := os.ReadFile(path)
		if err != nil {
			return Info{}, Keys{}, fmt.Errorf("site key: %w", err)
		}
		if *k.dst(&keys), err = nkeys.FromSeed(trimSpace(raw)); err != nil {
			return Info{}, Keys{}, fmt.Errorf("%s is not an NKey seed: %w", path, err)
		}
	}
	info, err := parseInfo(dir, data, keys)
	if err != nil {
		return Info{}, Keys{}, err
	}
	if fp, err := CAFingerprint(dir); err == nil {
		info.CAFingerprint = fp
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Info{}, Keys{}, err
	}
	return info, keys, nil
}

// parseInfo decodes site.json and checks it against the site key.
func parseInfo(dir string, data []byte, keys Keys) (Info, error) {
	var info Info
	if err := json.Unmarshal(data, &info); err != nil {
		return Info{}, fmt.Errorf("%s is damaged: %w", filepath.Join(dir, "site.json"), err)
	}
	if pub, _ := keys.Site.PublicKey(); pub != info.SiteKey {
		return Info{}, fmt.Errorf("%s/keys/site.nk does not match the site key in site.json: restore the original key", dir)
	}
	return info, nil
}

func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return fmt.Errorf("data dir %s is not writable: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// loadOrCreateKey reads a seed file, or creates it (0600) when absent.
func loadOrCreateKey(path string, create func() (nkeys.KeyPair, error)) (nkeys.KeyPair, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		kp, err := nkeys.FromSeed(trimSpace(data))
		if err != nil {
			return nil, fmt.Errorf("%s is not an NKey seed: %w", path, err)
		}
		return kp, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	kp, err := create()
	if err != nil {
		return nil, err
	}
	seed, _ := kp.Seed()
	if err := writeFileAtomic(path, append(seed, '\n'), 0o600); err != nil {
		return nil, err
	}
	return kp, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// writeFileAtomic writes data to a temporary file, syncs it and renames it
// over path, so a crash leaves either the old file or the new one.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
