package replication

import (
	"regexp"
	"strings"
	"testing"
)

// kvKey is what a KV key may be (nats.go's own rule).
var kvKey = regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)

func TestKeyToken(t *testing.T) {
	for _, s := range []string{"1.0", "2026-11-21", "a_b-c", "PAR", "é.x", "=3D", "a/b", "x y", strings.Repeat(".", 3)} {
		tok := keyToken(s)
		if strings.Contains(tok, ".") || !kvKey.MatchString(tok) {
			t.Errorf("keyToken(%q) = %q: want a valid KV key token without '.'", s, tok)
		}
		back, err := unkeyToken(tok)
		if err != nil || back != s {
			t.Errorf("unkeyToken(%q) = %q, %v: want %q", tok, back, err, s)
		}
	}
	if keyToken("1.0") == keyToken("1=2E0") {
		t.Error("two versions share a key token")
	}
	if k := jobKey("tools", "1.0", "CHD"); k != "tools.1=2E0.CHD" {
		t.Errorf("jobKey = %q", k)
	}
	for _, bad := range []string{"=", "=4", "=zz"} {
		if _, err := unkeyToken(bad); err == nil {
			t.Errorf("unkeyToken(%q): want an error", bad)
		}
	}
}

// TestOfferFitsOneMessage: the largest offer the despooler reads, a
// manifest of MaxManifestBytes in base64 with its envelope, fits the
// site's 1 MiB max_payload with room for headers.
func TestOfferFitsOneMessage(t *testing.T) {
	if maxOfferBytes > 1<<20-32<<10 {
		t.Fatalf("maxOfferBytes %d: want at most %d", maxOfferBytes, 1<<20-32<<10)
	}
}
