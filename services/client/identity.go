package client

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"

	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
)

// Identity is an operator's NKey seed with the site and operator name it
// belongs to. On disk it is a decorated NKey seed file (readable by any NATS
// tool) whose comment lines "# site: X" and "# operator: Y" name the rest,
// and "# ca: sha256:..." the site CA to pin when the file says it.
type Identity struct {
	Site     string
	Operator string
	CA       string // site CA fingerprint (contracts.CertFingerprint); "" when unknown
	Seed     []byte
}

// KeyPair returns the key pair of the seed.
func (id Identity) KeyPair() (nkeys.KeyPair, error) {
	kp, err := nkeys.FromSeed(id.Seed)
	if err != nil {
		return nil, fmt.Errorf("identity seed: %w", err)
	}
	return kp, nil
}

// ReadIdentity reads an identity file.
func ReadIdentity(path string) (Identity, error) {
	if path == "" {
		return Identity{}, errors.New("no identity: pass --identity FILE or set STEWARD_IDENTITY (the site writes <data>/admin.nk on first start)")
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Identity{}, fmt.Errorf("identity file %s does not exist (the site writes <data>/admin.nk on first start)", path)
	}
	if err != nil {
		return Identity{}, fmt.Errorf("read identity: %w", err)
	}
	var id Identity
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, "# site:"); ok {
			id.Site = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "# operator:"); ok {
			id.Operator = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "# ca:"); ok {
			id.CA = strings.TrimSpace(v)
			if err := contracts.ValidFingerprint(id.CA); err != nil {
				return Identity{}, fmt.Errorf("identity file %s: ca: %w", path, err)
			}
		}
	}
	kp, err := nkeys.ParseDecoratedNKey(data)
	if err != nil {
		return Identity{}, fmt.Errorf("identity file %s holds no NKey seed: %w", path, err)
	}
	id.Seed, err = kp.Seed()
	if err != nil {
		return Identity{}, fmt.Errorf("identity file %s holds a public key, not a seed", path)
	}
	return id, nil
}

// WriteIdentity writes id to path with mode 0600, atomically, refusing to
// replace an existing file.
func WriteIdentity(path string, id Identity) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Steward operator identity: keep this file secret (mode 0600).\n")
	fmt.Fprintf(&b, "# site: %s\n# operator: %s\n", id.Site, id.Operator)
	if id.CA != "" {
		fmt.Fprintf(&b, "# ca: %s\n", id.CA)
	}
	fmt.Fprintf(&b, "-----BEGIN USER NKEY SEED-----\n%s\n------END USER NKEY SEED------\n", id.Seed)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write identity: %w", err)
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write identity %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write identity %s: %w", path, err)
	}
	return f.Close()
}

// ExposedIdentity reports a problem when the identity file at path can be
// read or written by anyone but its owner: a seed file must be mode 0600.
// It returns nil for a private file (and on systems without Unix modes).
func ExposedIdentity(path string) error {
	st, err := os.Stat(path)
	if err != nil || runtime.GOOS == "windows" {
		return nil // ReadIdentity reports a missing file; Windows has ACLs, not modes
	}
	if mode := st.Mode().Perm(); mode&0o077 != 0 {
		return fmt.Errorf("identity file %s is readable by others (mode %04o): anyone who can read it can act as this operator; run chmod 600 %s", path, mode, path)
	}
	return nil
}
