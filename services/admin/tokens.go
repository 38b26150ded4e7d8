package admin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/cas"
	"github.com/stewardhq/steward/services/rbac"
)

// tokenRecord is a stored token (enrollment or site): its description and
// the SHA-256 of its secret. The secret itself is shown once and never
// stored.
type tokenRecord struct {
	contracts.TokenInfo
	SecretHash string `json:"secretHash"`
	// Child is, for a site token, the only site code that may link with it
	// ("" for any).
	Child string `json:"child,omitempty"`
}

// tokens is a token bucket, keyed by token ID: enrollment tokens in
// TokenBucket, site tokens in SiteTokenBucket.
type tokens struct {
	kv   jetstream.KeyValue
	noun string // what errors call a token: "enrollment token" (default) or "site token"
}

func (t *tokens) what() string {
	if t.noun == "" {
		return "enrollment token"
	}
	return t.noun
}

func hashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// create makes a token and returns it with its one-time printed form.
func (t *tokens) create(ctx context.Context, site, siteKey, ca, by string, ttl time.Duration, uses int, note string) (contracts.EnrollmentToken, contracts.TokenInfo, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return contracts.EnrollmentToken{}, contracts.TokenInfo{}, err
	}
	now := time.Now().UTC()
	tok := contracts.EnrollmentToken{Site: site, SiteKey: siteKey, ID: uuid.NewString(), Secret: base64.RawURLEncoding.EncodeToString(secret), CA: ca}
	rec := tokenRecord{
		TokenInfo:  contracts.TokenInfo{ID: tok.ID, Created: now, Expires: now.Add(ttl), Uses: uses, CreatedBy: by, Note: note},
		SecretHash: hashSecret(tok.Secret),
	}
	data, _ := json.Marshal(rec)
	if _, err := t.kv.Create(ctx, tok.ID, data); err != nil {
		return contracts.EnrollmentToken{}, contracts.TokenInfo{}, err
	}
	return tok, rec.TokenInfo, nil
}

func (t *tokens) get(ctx context.Context, id string) (tokenRecord, uint64, error) {
	if contracts.ValidToken(id) != nil {
		return tokenRecord{}, 0, contracts.Errorf(contracts.CodeNotFound, "no token %q", id)
	}
	e, err := t.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return tokenRecord{}, 0, contracts.Errorf(contracts.CodeNotFound, "no token %q", id)
	}
	if err != nil {
		return tokenRecord{}, 0, err
	}
	var rec tokenRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return tokenRecord{}, 0, fmt.Errorf("token %s is unreadable: %w", id, err)
	}
	return rec, e.Revision(), nil
}

// checkToken says whether rec admits one more enrollment with secret now.
func checkToken(rec tokenRecord, secret string, now time.Time) error {
	return checkTokenAs("enrollment token", rec, secret, now)
}

// checkTokenAs says whether rec, a token of kind what, admits one more use
// with secret now.
func checkTokenAs(what string, rec tokenRecord, secret string, now time.Time) error {
	if subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(rec.SecretHash)) != 1 {
		return contracts.Errorf(contracts.CodeTokenInvalid, "%s %s is not valid (wrong secret)", what, rec.ID)
	}
	if rec.Revoked {
		return contracts.Errorf(contracts.CodeTokenRevoked, "%s %s was revoked", what, rec.ID)
	}
	if !now.Before(rec.Expires) {
		return contracts.Errorf(contracts.CodeTokenExpired, "%s %s expired at %s", what, rec.ID, rec.Expires.Format(time.RFC3339))
	}
	if rec.Used >= rec.Uses {
		return contracts.Errorf(contracts.CodeTokenSpent, "%s %s is spent (%d of %d uses taken)", what, rec.ID, rec.Used, rec.Uses)
	}
	return nil
}

// consume takes one use of the token, checking it under optimistic
// concurrency so two agents racing for the last use cannot both win.
func (t *tokens) consume(ctx context.Context, tok contracts.EnrollmentToken, now time.Time) (contracts.TokenInfo, error) {
	return t.consumeIf(ctx, tok.ID, tok.Secret, now, nil)
}

// consumeIf is consume with a further check of the record (nil: none).
func (t *tokens) consumeIf(ctx context.Context, id, secret string, now time.Time, check func(tokenRecord) error) (contracts.TokenInfo, error) {
	for attempt := 0; attempt < 20; attempt++ {
		rec, rev, err := t.get(ctx, id)
		if contracts.CodeOf(err) == contracts.CodeNotFound {
			return contracts.TokenInfo{}, contracts.Errorf(contracts.CodeTokenInvalid, "%s %s is not one this site issued", t.what(), id)
		}
		if err != nil {
			return contracts.TokenInfo{}, err
		}
		if err := checkTokenAs(t.what(), rec, secret, now); err != nil {
			return contracts.TokenInfo{}, err
		}
		if check != nil {
			if err := check(rec); err != nil {
				return contracts.TokenInfo{}, err
			}
		}
		rec.Used++
		data, _ := json.Marshal(rec)
		if _, err = t.kv.Update(ctx, id, data, rev); err == nil {
			return rec.TokenInfo, nil
		}
		if !cas.Lost(err) {
			return contracts.TokenInfo{}, err
		}
	}
	return contracts.TokenInfo{}, contracts.Errorf(contracts.CodeConflict, "%s %s is contended; try again", t.what(), id)
}

func (t *tokens) list(ctx context.Context) ([]contracts.TokenInfo, error) {
	lister, err := t.kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := []contracts.TokenInfo{}
	for key := range lister.Keys() {
		rec, _, err := t.get(ctx, key)
		if contracts.CodeOf(err) == contracts.CodeNotFound {
			continue
		}
		if err != nil {
			return nil, err
		}
		info := rec.TokenInfo
		info.Child = rec.Child
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

func (t *tokens) revoke(ctx context.Context, id string) (contracts.TokenInfo, error) {
	for attempt := 0; attempt < 20; attempt++ {
		rec, rev, err := t.get(ctx, id)
		if err != nil {
			return contracts.TokenInfo{}, err
		}
		rec.Revoked = true
		data, _ := json.Marshal(rec)
		if _, err = t.kv.Update(ctx, id, data, rev); err == nil {
			return rec.TokenInfo, nil
		}
		if !cas.Lost(err) {
			return contracts.TokenInfo{}, err
		}
	}
	return contracts.TokenInfo{}, contracts.Errorf(contracts.CodeConflict, "token %s is contended; try again", id)
}

// Operator endpoints.

func (s *Service) createToken(ctx context.Context, from contracts.SubjectInfo, req *contracts.TokenCreateRequest) (*contracts.TokenResponse, error) {
	if err := s.authorize(from, rbac.EnrollmentTokenCreate); err != nil {
		return nil, err
	}
	tok, info, err := s.tokens.create(ctx, s.cfg.Site, s.siteKey, s.cfg.CAFingerprint, from.Principal, time.Duration(req.TTL), req.Uses, req.Note)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, contracts.AuditTokenCreated, contracts.StatusTokenCreated, from.Principal, rbac.ObjEnrollmentToken, info.ID, map[string]string{
		"token": info.ID, "uses": strconv.Itoa(info.Uses), "expires": info.Expires.Format(time.RFC3339), "note": info.Note,
	})
	return &contracts.TokenResponse{Header: contracts.NewHeader(contracts.TypeTokenResponse), Token: tok.String(), Info: info}, nil
}

func (s *Service) listTokens(ctx context.Context, from contracts.SubjectInfo, _ *contracts.TokenListRequest) (*contracts.TokenListResponse, error) {
	return s.listTokensOf(ctx, from, s.tokens, rbac.EnrollmentTokenRead)
}

func (s *Service) revokeToken(ctx context.Context, from contracts.SubjectInfo, req *contracts.TokenRevokeRequest) (*contracts.TokenResponse, error) {
	return s.revokeTokenOf(ctx, from, req.ID, s.tokens, rbac.EnrollmentTokenDelete, contracts.AuditTokenRevoked, contracts.StatusTokenRevoked, rbac.ObjEnrollmentToken)
}

// listTokensOf lists a token bucket (enrollment or site tokens) for an
// operator holding perm.
func (s *Service) listTokensOf(ctx context.Context, from contracts.SubjectInfo, t *tokens, perm rbac.Permission) (*contracts.TokenListResponse, error) {
	if err := s.authorize(from, perm); err != nil {
		return nil, err
	}
	list, err := t.list(ctx)
	if err != nil {
		return nil, err
	}
	return &contracts.TokenListResponse{Header: contracts.NewHeader(contracts.TypeTokenListResponse), Tokens: list}, nil
}

// revokeTokenOf revokes token id of a token bucket for an operator holding
// perm, audited as action and status message statusID on obj.
func (s *Service) revokeTokenOf(ctx context.Context, from contracts.SubjectInfo, id string, t *tokens, perm rbac.Permission, action string, statusID int, obj string) (*contracts.TokenResponse, error) {
	if err := s.authorize(from, perm); err != nil {
		return nil, err
	}
	info, err := t.revoke(ctx, id)
	if err != nil {
		return nil, err
	}
	s.audit(ctx, action, statusID, from.Principal, obj, info.ID, map[string]string{"token": info.ID})
	return &contracts.TokenResponse{Header: contracts.NewHeader(contracts.TypeTokenResponse), Info: info}, nil
}
