package site

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stewardhq/steward/services/client"
)

func TestInitFirstStartAndReuse(t *testing.T) {
	dir := t.TempDir()
	info, keys, err := Init(dir, "LAB", false)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "admin.nk"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("admin.nk mode %v, want 0600", st.Mode().Perm())
	}
	for _, k := range []string{"site.nk", "callout.nk", "service.nk", "system.nk", "seal.xk"} {
		st, err := os.Stat(filepath.Join(dir, "keys", k))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("keys/%s: %v mode %v, want 0600", k, err, st.Mode().Perm())
		}
	}
	id, err := client.ReadIdentity(filepath.Join(dir, "admin.nk"))
	if err != nil {
		t.Fatal(err)
	}
	kp, _ := id.KeyPair()
	pub, _ := kp.PublicKey()
	if id.Site != "LAB" || id.Operator != "admin" || pub != info.BootstrapAdmin {
		t.Fatalf("got identity site %q operator %q key %s, want LAB admin %s", id.Site, id.Operator, pub, info.BootstrapAdmin)
	}

	// A later start, with no --site given, reuses everything.
	info2, keys2, err := Init(dir, "IGNORED", false)
	if err != nil {
		t.Fatal(err)
	}
	p1, _ := keys.Site.PublicKey()
	p2, _ := keys2.Site.PublicKey()
	s1, _ := keys.Seal.PublicKey()
	s2, _ := keys2.Seal.PublicKey()
	if !strings.HasPrefix(s1, "X") || s1 != s2 {
		t.Fatalf("seal key: got %q then %q, want the same curve key (X...) twice", s1, s2)
	}
	if info2.Site != "LAB" || p1 != p2 || info2.BootstrapAdmin != info.BootstrapAdmin {
		t.Fatalf("second start: got site %s key %s, want LAB %s", info2.Site, p2, p1)
	}
}

func TestInitRefusals(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := Init(dir, "LAB", true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Init(dir, "CHD", true); err == nil || !strings.Contains(err.Error(), "belongs to site LAB") {
		t.Fatalf("got %v, want a site mismatch error", err)
	}
	// A code no server could run under (site init took it, serve failed
	// later on the nats.conf), and nothing written for it.
	fresh := filepath.Join(t.TempDir(), "fresh")
	if _, _, err := Init(fresh, "bad code", true); err == nil || !strings.Contains(err.Error(), "site code") {
		t.Fatalf("got %v, want the site code refused", err)
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Fatalf("a refused code left %s behind (%v)", fresh, err)
	}

	// A data dir that cannot be created (a file stands in the way; this
	// fails for root too).
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Init(filepath.Join(file, "data"), "LAB", false); err == nil || !strings.Contains(err.Error(), "cannot be created") {
		t.Fatalf("got %v, want a clear data dir error", err)
	}

	// A damaged site.json.
	bad := t.TempDir()
	if _, _, err := Init(bad, "LAB", false); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "site.json"), []byte("{nope"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Init(bad, "LAB", false); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("got %v, want damaged site.json", err)
	}

	// A replaced site key is refused rather than silently re-keying the site.
	rekey := t.TempDir()
	if _, _, err := Init(rekey, "LAB", false); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(rekey, "keys", "site.nk"))
	if _, _, err := Init(rekey, "LAB", false); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("got %v, want a key mismatch error", err)
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}
	if err := c.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:4222" || c.Site != "LAB" || !filepath.IsAbs(c.DataDir) || c.LinkCompression != "auto" {
		t.Fatalf("got %+v", c)
	}
	for _, bad := range []Config{{Site: "A.B"}, {Services: []string{"nope"}}, {Listen: "nohostport"},
		{LinkCompression: "zip"}, {Server: "nats://nats:4222", LinkCompression: "off"}} {
		if err := bad.CheckAndSetDefaults(); err == nil {
			t.Errorf("config %+v: got nil error, want one", bad)
		}
	}
}
