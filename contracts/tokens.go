package contracts

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Message type strings of enrollment tokens.
const (
	TypeTokenCreateRequest = "steward.v1.token_create_request"
	TypeTokenResponse      = "steward.v1.token_response"
	TypeTokenListRequest   = "steward.v1.token_list_request"
	TypeTokenListResponse  = "steward.v1.token_list_response"
	TypeTokenRevokeRequest = "steward.v1.token_revoke_request"
)

// Token limits.
const (
	MaxTokenTTL  = 365 * 24 * time.Hour
	MaxTokenUses = 1_000_000
)

// TokenCreateRequest asks for a new enrollment token.
type TokenCreateRequest struct {
	Header
	TTL  Duration `json:"ttl"`
	Uses int      `json:"uses"`
	Note string   `json:"note,omitempty"`
}

// Validate checks the bounds.
func (r *TokenCreateRequest) Validate() error {
	if time.Duration(r.TTL) < time.Second || time.Duration(r.TTL) > MaxTokenTTL {
		return fmt.Errorf("ttl %s: must be between 1s and %s", time.Duration(r.TTL), MaxTokenTTL)
	}
	if r.Uses < 1 || r.Uses > MaxTokenUses {
		return fmt.Errorf("uses %d: must be between 1 and %d", r.Uses, MaxTokenUses)
	}
	if len(r.Note) > 256 {
		return fmt.Errorf("note longer than 256 characters")
	}
	return nil
}

// TokenInfo describes a token; the secret itself is never stored or listed.
type TokenInfo struct {
	ID        string    `json:"id"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"`
	Uses      int       `json:"uses"`
	Used      int       `json:"used"`
	Revoked   bool      `json:"revoked"`
	CreatedBy string    `json:"createdBy"`
	Note      string    `json:"note,omitempty"`
	// Child is, for a site token, the only child site that may link with
	// it ("" for any).
	Child string `json:"child,omitempty"`
}

// TokenResponse answers create (with Token, shown once) and revoke.
type TokenResponse struct {
	Header
	Token string    `json:"token,omitempty"`
	Info  TokenInfo `json:"info"`
}

// TokenListRequest asks for every token.
type TokenListRequest struct {
	Header
}

// TokenListResponse lists tokens, newest first.
type TokenListResponse struct {
	Header
	Tokens []TokenInfo `json:"tokens"`
}

// TokenRevokeRequest revokes a token by ID. The ID travels as "tokenId":
// "id" is the message ID of the embedded Header.
type TokenRevokeRequest struct {
	Header
	ID string `json:"tokenId"`
}

// Validate checks the ID is present.
func (r *TokenRevokeRequest) Validate() error {
	if r.ID == "" {
		return fmt.Errorf("a token id is required")
	}
	return nil
}

// EnrollmentToken is what `steward tokens create` prints: everything an agent
// needs to enroll and to pin the site's signing key and TLS certificate
// authority before it has talked to the site. Only the SHA-256 of Secret is
// stored by the site.
type EnrollmentToken struct {
	Site    string `json:"s"`
	SiteKey string `json:"k"` // the site signing key (NKey public key) to pin
	ID      string `json:"i"`
	Secret  string `json:"x"`
	// CA is the fingerprint (CertFingerprint) of the site's TLS certificate
	// authority, which the agent pins for every TLS connection to the site.
	// Tokens made before the site had a CA have none; so may a token of a
	// site that serves only loopback.
	CA string `json:"c,omitempty"`
}

// tokenPrefix marks and versions the printed form.
const tokenPrefix = "STW1-"

// String encodes the token as "STW1-" + base64url(JSON).
func (t EnrollmentToken) String() string { return encodeToken(tokenPrefix, t) }

// ParseEnrollmentToken decodes a printed token.
func ParseEnrollmentToken(s string) (EnrollmentToken, error) {
	var t EnrollmentToken
	if err := decodeToken(s, tokenPrefix, "enrollment token", "`steward tokens create`", &t); err != nil {
		return EnrollmentToken{}, err
	}
	if ValidToken(t.Site) != nil || t.SiteKey == "" || t.ID == "" || t.Secret == "" {
		return EnrollmentToken{}, Errorf(CodeTokenInvalid, "enrollment token is incomplete")
	}
	if t.CA != "" && ValidFingerprint(t.CA) != nil {
		return EnrollmentToken{}, Errorf(CodeTokenInvalid, "enrollment token is damaged: its CA fingerprint is malformed")
	}
	return t, nil
}

// encodeToken prints a token: prefix + base64url(JSON of t).
func encodeToken(prefix string, t any) string {
	b, _ := json.Marshal(t)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// decodeToken reads a token printed by encodeToken into t; noun names it
// in errors and made says which command prints it.
func decodeToken(s, prefix, noun, made string, t any) error {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, prefix) {
		return Errorf(CodeTokenInvalid, "%s must start with %q (copy it whole from %s)", noun, prefix, made)
	}
	raw, err := base64.RawURLEncoding.DecodeString(s[len(prefix):])
	if err != nil {
		return Errorf(CodeTokenInvalid, "%s is damaged: %v", noun, err)
	}
	if err := json.Unmarshal(raw, t); err != nil {
		return Errorf(CodeTokenInvalid, "%s is damaged: %v", noun, err)
	}
	return nil
}
