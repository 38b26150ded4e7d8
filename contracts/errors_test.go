package contracts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/token"
	"regexp"
	"strconv"
	"testing"
)

// TestCodeTable pins every code's number and name. Codes travel on the wire
// and are stored by clients: never renumber or rename one; add rows here as
// codes are added.
func TestCodeTable(t *testing.T) {
	tests := []struct {
		code Code
		num  int
		name string
	}{
		{CodeInternal, 1000, "internal"},
		{CodeBadRequest, 1001, "bad_request"},
		{CodeTooLarge, 1002, "too_large"},
		{CodeUnauthenticated, 1003, "unauthenticated"},
		{CodePermissionDenied, 1004, "permission_denied"},
		{CodeNotFound, 1005, "not_found"},
		{CodeAmbiguous, 1006, "ambiguous"},
		{CodeConflict, 1007, "conflict"},
		{CodeUnavailable, 1008, "unavailable"},
		{CodeTokenInvalid, 2001, "token_invalid"},
		{CodeTokenExpired, 2002, "token_expired"},
		{CodeTokenSpent, 2003, "token_spent"},
		{CodeTokenRevoked, 2004, "token_revoked"},
		{CodeTokenForeignSite, 2005, "token_foreign_site"},
		{CodeBlocked, 2006, "blocked"},
		{CodePolicyDenied, 3001, "policy_denied"},
		{CodeNotPermittedViewer, 3002, "not_permitted_viewer"},
		{CodeConsentRefused, 3003, "consent_refused"},
		{CodeClientOffline, 3004, "client_offline"},
		{CodeClientRefused, 3005, "client_refused"},
	}
	for _, tt := range tests {
		if int(tt.code) != tt.num {
			t.Errorf("code %s: got number %d, want %d", tt.name, int(tt.code), tt.num)
		}
		if got := tt.code.String(); got != tt.name {
			t.Errorf("Code(%d).String(): got %q, want %q", tt.num, got, tt.name)
		}
	}
	if got, want := len(Codes()), len(tests); got != want {
		t.Errorf("len(Codes()): got %d, want %d (add the new codes to this table)", got, want)
	}
}

var codeNameRE = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

func TestCodeNames(t *testing.T) {
	seen := map[string]Code{}
	for c, name := range Codes() {
		if !codeNameRE.MatchString(name) {
			t.Errorf("code %d name: got %q, want lower_snake_case", int(c), name)
		}
		if other, ok := seen[name]; ok {
			t.Errorf("code name %q: got it on both %d and %d, want each name once", name, int(other), int(c))
		}
		seen[name] = c
		if c <= 0 {
			t.Errorf("code %q: got %d, want a positive number", name, int(c))
		}
	}
}

// TestEveryCodeHasName parses the package source so that a Code constant
// cannot be added without its name in the table.
func TestEveryCodeHasName(t *testing.T) {
	names := Codes()
	declared := map[Code]string{} // code -> constant name
	for _, c := range sourceConsts(t) {
		if c.Type != "Code" {
			continue
		}
		if c.Kind != token.INT {
			t.Errorf("%s: %s: got a value that is not an integer literal, want one (codes are never renumbered, so each is written out)", c.Pos, c.Name)
			continue
		}
		n, err := strconv.Atoi(c.Lit)
		if err != nil {
			t.Errorf("%s: %s = %s: %v", c.Pos, c.Name, c.Lit, err)
			continue
		}
		code := Code(n)
		if other, ok := declared[code]; ok {
			t.Errorf("%s: %s = %d: got the same number as %s, want each number once", c.Pos, c.Name, n, other)
		}
		declared[code] = c.Name
		if _, ok := names[code]; !ok {
			t.Errorf("%s: %s = %d: got no name in codeNames, want one", c.Pos, c.Name, n)
		}
	}
	if len(declared) == 0 {
		t.Fatalf("Code constants in source: got 0, want some")
	}
	for code, name := range names {
		if _, ok := declared[code]; !ok {
			t.Errorf("codeNames[%d] = %q: got no Code constant with that number, want one", int(code), name)
		}
	}
}

func TestCodesIsACopy(t *testing.T) {
	m := Codes()
	m[CodeNotFound] = "changed"
	delete(m, CodeInternal)
	if got := CodeNotFound.String(); got != "not_found" {
		t.Errorf("CodeNotFound.String() after changing Codes(): got %q, want %q", got, "not_found")
	}
	if _, ok := Codes()[CodeInternal]; !ok {
		t.Errorf("Codes()[CodeInternal] after deleting from a copy: got missing, want present")
	}
}

func TestCodeStringUnknown(t *testing.T) {
	tests := []struct {
		code Code
		want string
	}{
		{0, "code_0"},
		{999, "code_999"},
		{9999, "code_9999"},
		{-1, "code_-1"},
	}
	for _, tt := range tests {
		if got := tt.code.String(); got != tt.want {
			t.Errorf("Code(%d).String(): got %q, want %q", int(tt.code), got, tt.want)
		}
	}
}

func TestParseCode(t *testing.T) {
	tests := []struct {
		in   string
		want Code
	}{
		{"1000", CodeInternal},
		{"1001", CodeBadRequest},
		{"1005", CodeNotFound},
		{"2006", CodeBlocked},
		{"9999", Code(9999)}, // unknown but well-formed: kept, so a newer server's code is not lost
		{"", CodeInternal},
		{"abc", CodeInternal},
		{"not_found", CodeInternal},
		{"1005 ", CodeInternal},
		{"10.5", CodeInternal},
		{"99999999999999999999", CodeInternal},
	}
	for _, tt := range tests {
		if got := ParseCode(tt.in); got != tt.want {
			t.Errorf("ParseCode(%q): got %d, want %d", tt.in, int(got), int(tt.want))
		}
	}
	for c := range Codes() {
		s := strconv.Itoa(int(c))
		if got := ParseCode(s); got != c {
			t.Errorf("ParseCode(%q): got %d, want %d", s, int(got), int(c))
		}
	}
}

func TestCodeOf(t *testing.T) {
	notFound := Errorf(CodeNotFound, "client %q not found", "web-01")
	tests := []struct {
		name string
		err  error
		want Code
	}{
		{"direct", notFound, CodeNotFound},
		{"wrapped", fmt.Errorf("show: %w", notFound), CodeNotFound},
		{"wrapped twice", fmt.Errorf("cli: %w", fmt.Errorf("show: %w", notFound)), CodeNotFound},
		{"joined", errors.Join(errors.New("first"), Errorf(CodeConflict, "second")), CodeConflict},
		{"outermost wins", Errorf(CodeBlocked, "outer: %v", notFound), CodeBlocked},
		{"plain", errors.New("boom"), CodeInternal},
		{"context", context.Canceled, CodeInternal},
		{"formatted not wrapped", fmt.Errorf("show: %v", notFound), CodeInternal},
		{"nil", nil, CodeInternal},
	}
	for _, tt := range tests {
		if got := CodeOf(tt.err); got != tt.want {
			t.Errorf("%s: CodeOf(%v): got %s, want %s", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestErrorf(t *testing.T) {
	tests := []struct {
		err      *Error
		wantCode Code
		wantMsg  string
	}{
		{Errorf(CodeNotFound, "client %q not found", "web-01"), CodeNotFound, `client "web-01" not found`},
		{Errorf(CodeTooLarge, "%d bytes", 70000), CodeTooLarge, "70000 bytes"},
		{Errorf(CodeInternal, "plain"), CodeInternal, "plain"},
		{Errorf(Code(4242), "future code"), Code(4242), "future code"},
	}
	for _, tt := range tests {
		if tt.err.Code != tt.wantCode {
			t.Errorf("Errorf(...).Code: got %s, want %s", tt.err.Code, tt.wantCode)
		}
		if tt.err.Message != tt.wantMsg {
			t.Errorf("Errorf(...).Message: got %q, want %q", tt.err.Message, tt.wantMsg)
		}
		if got := tt.err.Error(); got != tt.wantMsg {
			t.Errorf("Errorf(...).Error(): got %q, want %q", got, tt.wantMsg)
		}
	}
}

func TestErrorJSON(t *testing.T) {
	e := Errorf(CodeTokenExpired, "the token expired")
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"code":2002,"message":"the token expired"}`; got != want {
		t.Errorf("json.Marshal(*Error): got %s, want %s", got, want)
	}
	var back Error
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back != *e {
		t.Errorf("json round trip: got %+v, want %+v", back, *e)
	}
}
