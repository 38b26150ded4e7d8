package contracts

import (
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
	"time"
)

var exampleSiteToken = SiteToken{Site: "HQ1", SiteKey: exampleSiteKey, ID: exampleTokenID, Secret: exampleSecret, CA: CertFingerprint([]byte("a CA"))}

func TestSiteTokenRoundTrip(t *testing.T) {
	printed := regexp.MustCompile(`^STS1-[A-Za-z0-9_-]+$`)
	for _, tok := range []SiteToken{exampleSiteToken, {Site: "P", SiteKey: "k", ID: "i", Secret: "x"}} {
		s := tok.String()
		if !printed.MatchString(s) {
			t.Errorf("%+v.String(): got %q, want it to match %s", tok, s, printed)
		}
		for _, in := range []string{s, " " + s + "\n"} {
			got, err := ParseSiteToken(in)
			if err != nil || got != tok {
				t.Errorf("ParseSiteToken(%q): got %+v, %v, want %+v", in, got, err, tok)
			}
		}
	}
}

func TestParseSiteTokenErrors(t *testing.T) {
	enc := func(raw string) string { return "STS1-" + base64.RawURLEncoding.EncodeToString([]byte(raw)) }
	without := func(f func(*SiteToken)) string { tok := exampleSiteToken; f(&tok); return tok.String() }
	tests := []struct{ name, in, want string }{
		{"an enrollment token", exampleToken.String(), `must start with "STS1-"`},
		{"empty", "", `must start with "STS1-"`},
		{"not base64", "STS1-!!!", "damaged"},
		{"not JSON", enc("nope"), "damaged"},
		{"no site", without(func(t *SiteToken) { t.Site = "" }), "incomplete"},
		{"a site with a dot", without(func(t *SiteToken) { t.Site = "H.Q" }), "incomplete"},
		{"no key", without(func(t *SiteToken) { t.SiteKey = "" }), "incomplete"},
		{"no id", without(func(t *SiteToken) { t.ID = "" }), "incomplete"},
		{"no secret", without(func(t *SiteToken) { t.Secret = "" }), "incomplete"},
		{"bad CA", without(func(t *SiteToken) { t.CA = "md5:00" }), "CA fingerprint"},
	}
	for _, tt := range tests {
		_, err := ParseSiteToken(tt.in)
		if err == nil || CodeOf(err) != CodeTokenInvalid || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want token_invalid containing %q", tt.name, err, tt.want)
		}
	}
}

func TestSiteRequestsValidate(t *testing.T) {
	ok := []interface{ Validate() error }{
		&SitePeersRequest{},
		&SitePeersRequest{Site: "BR1"},
		&SiteTokenCreateRequest{TTL: Duration(time.Hour)},
		&SiteTokenCreateRequest{TTL: Duration(time.Hour), Child: "BR1", Note: "branch"},
		&SiteJoinRequest{Join: []byte("{}"), Signature: []byte{1}},
		&SiteHeartbeat{Interval: Duration(SiteHeartbeatInterval)},
	}
	for _, r := range ok {
		if err := r.Validate(); err != nil {
			t.Errorf("%+v: got %v, want valid", r, err)
		}
	}
	bad := []interface{ Validate() error }{
		&SitePeersRequest{Site: "B.R"},
		&SiteTokenCreateRequest{},
		&SiteTokenCreateRequest{TTL: Duration(MaxTokenTTL + time.Second)},
		&SiteTokenCreateRequest{TTL: Duration(time.Hour), Child: ">"},
		&SiteTokenCreateRequest{TTL: Duration(time.Hour), Note: strings.Repeat("n", 257)},
		&SiteJoinRequest{Join: []byte("{}")},
		&SiteJoinRequest{Signature: []byte{1}},
		&SiteHeartbeat{Interval: Duration(-time.Second)},
		&SiteHeartbeat{Interval: Duration(25 * time.Hour)},
	}
	for _, r := range bad {
		if err := r.Validate(); err == nil {
			t.Errorf("%+v: got valid, want an error", r)
		}
	}
}

func TestSiteJoinSigningInput(t *testing.T) {
	body := []byte(`{"parent":"HQ1"}`)
	got := string(SiteJoinSigningInput(body))
	if got != "steward-site-join-v1\n"+string(body) {
		t.Fatalf("got %q, want the context prefix then the body", got)
	}
	if string(ManifestSigningInput(body)) == got {
		t.Fatal("a join's signing input equals a manifest's: a signature of one would verify as the other")
	}
}
