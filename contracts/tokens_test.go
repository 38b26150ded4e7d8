package contracts

import (
	"encoding/base64"
	"errors"
	"regexp"
	"strings"
	"testing"
)

const exampleSecret = "sekret-do-not-print"

var exampleToken = EnrollmentToken{
	Site:    "s1",
	SiteKey: exampleSiteKey,
	ID:      exampleTokenID,
	Secret:  exampleSecret,
}

// printedRE is what a printed token must look like: safe to copy from a
// terminal and paste into a shell without quoting.
var printedRE = regexp.MustCompile(`^STW1-[A-Za-z0-9_-]+$`)

func TestEnrollmentTokenRoundTrip(t *testing.T) {
	tests := []EnrollmentToken{
		exampleToken,
		{Site: "s", SiteKey: "k", ID: "i", Secret: "x"},
		{Site: "site-with_odd~chars", SiteKey: exampleSiteKey, ID: exampleTokenID, Secret: `quote" backslash\ slash/ unicode é ✓`},
		{Site: "s1", SiteKey: exampleSiteKey, ID: exampleTokenID, Secret: strings.Repeat("x", 512)},
		{Site: "s1", SiteKey: exampleSiteKey, ID: exampleTokenID, Secret: exampleSecret, CA: CertFingerprint([]byte("a CA"))},
	}
	for _, tok := range tests {
		s := tok.String()
		if !printedRE.MatchString(s) {
			t.Errorf("%+v.String(): got %q, want it to match %s", tok, s, printedRE)
		}
		// Whitespace around the token is tolerated, and so are line breaks
		// inside it (base64 skips them), should a terminal or mail wrap it.
		wrapped := s[:10] + "\n" + s[10:20] + "\r\n" + s[20:]
		for _, in := range []string{s, " " + s, s + "\n", "\t" + s + "\r\n", "\n\n  " + s + "  \n", wrapped} {
			got, err := ParseEnrollmentToken(in)
			if err != nil {
				t.Errorf("ParseEnrollmentToken(%q): got error %v, want %+v", in, err, tok)
				continue
			}
			if got != tok {
				t.Errorf("ParseEnrollmentToken(%q): got %+v, want %+v", in, got, tok)
			}
		}
	}
}

func TestParseEnrollmentTokenErrors(t *testing.T) {
	good := exampleToken.String()
	body := good[len("STW1-"):]
	enc := func(raw string) string { return "STW1-" + base64.RawURLEncoding.EncodeToString([]byte(raw)) }
	without := func(f func(*EnrollmentToken)) string { tok := exampleToken; f(&tok); return tok.String() }

	const (
		prefix     = `must start with "STW1-"`
		damaged    = "damaged"
		incomplete = "incomplete"
	)
	tests := []struct {
		name    string
		in      string
		wantMsg string
	}{
		{"empty", "", prefix},
		{"blank", "  \n", prefix},
		{"no prefix", body, prefix},
		{"wrong prefix", "STW2-" + body, prefix},
		{"lower-case prefix", "stw1-" + body, prefix},
		{"prefix without dash", "STW1" + body, prefix},
		{"space after prefix", "STW1- " + body, damaged},
		{"quoted", `"` + good + `"`, prefix},
		{"prefix only", "STW1-", damaged},
		{"truncated by one", good[:len(good)-1], damaged},
		{"truncated by five", good[:len(good)-5], damaged},
		{"truncated by half", good[:len(good)/2], damaged},
		{"bad character", good[:20] + "!" + good[21:], damaged},
		{"split by space", good[:20] + " " + good[20:], damaged},
		{"padded base64", good + "==", damaged},
		{"standard base64", "STW1-" + base64.StdEncoding.EncodeToString([]byte(`{"s":"s1","k":"k","i":"i","x":"x?>"}`)), damaged},
		{"not json", enc("hello"), damaged},
		{"json array", enc(`["s1","k","i","x"]`), damaged},
		{"json string", enc(`"s1"`), damaged},
		{"wrong field type", enc(`{"s":"s1","k":"k","i":"i","x":7}`), damaged},
		{"trailing data", enc(`{"s":"s1","k":"k","i":"i","x":"x"}x`), damaged},
		{"json null", enc(`null`), incomplete},
		{"json empty object", enc(`{}`), incomplete},
		{"no site", without(func(tok *EnrollmentToken) { tok.Site = "" }), incomplete},
		{"no site key", without(func(tok *EnrollmentToken) { tok.SiteKey = "" }), incomplete},
		{"no id", without(func(tok *EnrollmentToken) { tok.ID = "" }), incomplete},
		{"no secret", without(func(tok *EnrollmentToken) { tok.Secret = "" }), incomplete},
		{"dotted site", without(func(tok *EnrollmentToken) { tok.Site = "s1.evil" }), incomplete},
		{"wildcard site", without(func(tok *EnrollmentToken) { tok.Site = ">" }), incomplete},
		{"long field names", enc(`{"site":"s1","siteKey":"k","id":"i","secret":"x"}`), incomplete},
		{"CA not a fingerprint", without(func(tok *EnrollmentToken) { tok.CA = "AB:CD" }), "CA fingerprint"},
		{"CA fingerprint short", without(func(tok *EnrollmentToken) { tok.CA = "sha256:abcd" }), "CA fingerprint"},
		{"CA fingerprint upper case", without(func(tok *EnrollmentToken) { tok.CA = strings.ToUpper(CertFingerprint(nil)) }), "CA fingerprint"},
	}
	for _, tt := range tests {
		got, err := ParseEnrollmentToken(tt.in)
		if err == nil {
			t.Errorf("%s: ParseEnrollmentToken(%q): got %+v, want an error", tt.name, tt.in, got)
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeTokenInvalid {
			t.Errorf("%s: ParseEnrollmentToken(%q): got error %v (code %s), want code %s", tt.name, tt.in, err, CodeOf(err), CodeTokenInvalid)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "enrollment token ") || !strings.Contains(msg, tt.wantMsg) {
			t.Errorf("%s: ParseEnrollmentToken(%q): got message %q, want one starting \"enrollment token \" and containing %q", tt.name, tt.in, msg, tt.wantMsg)
		}
		if strings.Contains(msg, exampleSecret) {
			t.Errorf("%s: ParseEnrollmentToken(%q): got message %q, want it not to repeat the secret", tt.name, tt.in, msg)
		}
		if got != (EnrollmentToken{}) {
			t.Errorf("%s: ParseEnrollmentToken(%q): got token %+v with the error, want the zero token", tt.name, tt.in, got)
		}
	}
}

// TestEnrollmentTokenWithoutCA: tokens printed before sites had a CA (no
// "c" field) still parse, with no CA to pin; a token's CA travels as "c".
func TestEnrollmentTokenWithoutCA(t *testing.T) {
	old := "STW1-" + base64.RawURLEncoding.EncodeToString([]byte(`{"s":"s1","k":"`+exampleSiteKey+`","i":"`+exampleTokenID+`","x":"`+exampleSecret+`"}`))
	got, err := ParseEnrollmentToken(old)
	if err != nil {
		t.Fatalf("a token without a CA: got %v, want it parsed", err)
	}
	if got != exampleToken || got.CA != "" {
		t.Fatalf("got %+v, want %+v with no CA", got, exampleToken)
	}
	if s := exampleToken.String(); s != old {
		t.Fatalf("a token without a CA prints %q, want %q (no \"c\" field)", s, old)
	}
	fp := CertFingerprint([]byte("a CA"))
	with := exampleToken
	with.CA = fp
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(with.String(), "STW1-"))
	if !strings.Contains(string(raw), `"c":"`+fp+`"`) {
		t.Fatalf("got token JSON %s, want the CA as \"c\"", raw)
	}
}
