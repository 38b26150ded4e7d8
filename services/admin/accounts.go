package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/cas"
	"github.com/stewardhq/steward/services/rbac"
)

// Site accounts: named accounts with a purpose (seed 002), whose secrets
// are sealed with the site's curve key (NaCl box, through nkeys' xkv1
// format) at rest, arrive sealed from the CLI, and leave only sealed to a
// client's own curve key. No API returns a secret; none is logged.
//
// The bucket admin-accounts has one key per purpose, whose value is every
// account of that purpose, changed by compare-and-set: the limit of
// MaxAccountsPerPurpose and the uniqueness of names hold across instances.

// MaxSecret bounds a secret's length in bytes, once opened.
const MaxSecret = 1024

// accountRecord is a stored account: its description and its sealed secret.
type accountRecord struct {
	contracts.AccountInfo
	Sealed []byte `json:"sealed"` // the secret, sealed by the site key to itself
}

type purposeDoc struct {
	Accounts []accountRecord `json:"accounts"`
}

// accounts is the account bucket and the site's seal key.
type accounts struct {
	kv   jetstream.KeyValue
	seal nkeys.KeyPair // curve key pair (X...); nil: accounts are unavailable
	pub  string
}

// Sealing. Pure functions of keys, tested without a server.

// openSecret opens a secret sealed by sender to the site key.
func openSecret(site nkeys.KeyPair, sealed []byte, sender string) ([]byte, error) {
	secret, err := site.Open(sealed, sender)
	if err != nil {
		return nil, contracts.Errorf(contracts.CodeBadRequest, "the sealed secret does not open with this site's key (was it sealed to `steward accounts` key of this site?)")
	}
	if len(secret) == 0 || len(secret) > MaxSecret {
		wipe(secret)
		return nil, contracts.Errorf(contracts.CodeBadRequest, "a secret must be 1 to %d bytes", MaxSecret)
	}
	return secret, nil
}

// sealAtRest seals a secret by the site key to itself: only the site key
// opens it.
func sealAtRest(site nkeys.KeyPair, secret []byte) ([]byte, error) {
	pub, err := site.PublicKey()
	if err != nil {
		return nil, err
	}
	return site.Seal(secret, pub)
}

// Reseal opens a secret stored sealed at rest and seals it to recipient, a
// client's public curve key: the one form in which a secret leaves the
// site. The client opens it with its own key and the site's public curve
// key as the sender.
func Reseal(site nkeys.KeyPair, stored []byte, recipient string) ([]byte, error) {
	if !nkeys.IsValidPublicCurveKey(recipient) {
		return nil, fmt.Errorf("%q is not a public curve key (X...)", recipient)
	}
	pub, err := site.PublicKey()
	if err != nil {
		return nil, err
	}
	secret, err := site.Open(stored, pub)
	if err != nil {
		return nil, fmt.Errorf("stored secret does not open with the site key: %w", err)
	}
	defer wipe(secret)
	return site.Seal(secret, recipient)
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

// The store.

func (a *accounts) get(ctx context.Context, purpose string) (purposeDoc, uint64, error) {
	e, err := a.kv.Get(ctx, purpose)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return purposeDoc{}, 0, nil
	}
	if err != nil {
		return purposeDoc{}, 0, err
	}
	var d purposeDoc
	if err := json.Unmarshal(e.Value(), &d); err != nil {
		return purposeDoc{}, 0, fmt.Errorf("accounts of %s are unreadable: %w", purpose, err)
	}
	return d, e.Revision(), nil
}

// change applies fn to the accounts of purpose under compare-and-set.
func (a *accounts) change(ctx context.Context, purpose string, fn func(d *purposeDoc) error) error {
	for attempt := 0; attempt < 10; attempt++ {
		d, rev, err := a.get(ctx, purpose)
		if err != nil {
			return err
		}
		if err := fn(&d); err != nil {
			return err
		}
		data, _ := json.Marshal(d)
		if rev == 0 {
			_, err = a.kv.Create(ctx, purpose, data)
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
		} else {
			_, err = a.kv.Update(ctx, purpose, data, rev)
			if cas.Lost(err) {
				continue
			}
		}
		return err
	}
	return contracts.Errorf(contracts.CodeConflict, "the accounts of %s are contended; try again", purpose)
}

// ordered sorts accounts newest first: the order in which they are tried,
// so that a new account takes over while the old ones still work.
func ordered(recs []accountRecord) {
	slices.SortStableFunc(recs, func(x, y accountRecord) int { return y.Created.Compare(x.Created) })
}

// addAccount adds rec to d, or replaces the secret of the account of the
// same name (any case) when replace is set.
func addAccount(d *purposeDoc, rec accountRecord, replace bool) (contracts.AccountInfo, error) {
	i := slices.IndexFunc(d.Accounts, func(x accountRecord) bool { return strings.EqualFold(x.Name, rec.Name) })
	switch {
	case i >= 0 && !replace:
		return contracts.AccountInfo{}, contracts.Errorf(contracts.CodeConflict,
			"%s account %q exists: to change its password without locking clients out, add a new account and remove this one later, or replace its password with --replace", rec.Purpose, d.Accounts[i].Name)
	case i >= 0:
		d.Accounts[i].Sealed = rec.Sealed
		d.Accounts[i].Rotated, d.Accounts[i].RotatedBy = rec.Created, rec.CreatedBy
		return d.Accounts[i].AccountInfo, nil
	case replace:
		return contracts.AccountInfo{}, contracts.Errorf(contracts.CodeNotFound, "no %s account %q to replace", rec.Purpose, rec.Name)
	case len(d.Accounts) >= contracts.MaxAccountsPerPurpose:
		return contracts.AccountInfo{}, contracts.Errorf(contracts.CodeConflict, "%s already has %d accounts, the most a purpose may have; remove an old one first", rec.Purpose, contracts.MaxAccountsPerPurpose)
	}
	d.Accounts = append(d.Accounts, rec)
	return rec.AccountInfo, nil
}

// SealAccountFor seals the secret of the account of purpose named name to
// recipient, a client's public curve key, for a service that hands it to
// that client (content access, replication). The answer opens with the
// client's key and sender, the site's public curve key.
func (s *Service) SealAccountFor(ctx context.Context, purpose, name, recipient string) (sealed []byte, sender string, err error) {
	if s.accts.seal == nil {
		return nil, "", contracts.Errorf(contracts.CodeUnavailable, "this admin service has no seal key")
	}
	d, _, err := s.accts.get(ctx, purpose)
	if err != nil {
		return nil, "", err
	}
	i := slices.IndexFunc(d.Accounts, func(x accountRecord) bool { return strings.EqualFold(x.Name, name) })
	if i < 0 {
		return nil, "", contracts.Errorf(contracts.CodeNotFound, "no %s account %q", purpose, name)
	}
	out, err := Reseal(s.accts.seal, d.Accounts[i].Sealed, recipient)
	return out, s.accts.pub, err
}

// Operator endpoints.

func (s *Service) requireSealKey() error {
	if s.accts.seal == nil {
		return contracts.Errorf(contracts.CodeUnavailable, "this admin service has no seal key (keys/seal.xk)")
	}
	return nil
}

func (s *Service) accountKey(ctx context.Context, from contracts.SubjectInfo, _ *contracts.AccountKeyRequest) (*contracts.AccountKeyResponse, error) {
	if err := s.authorize(from, rbac.AccountCreate); err != nil {
		if err2 := s.authorize(from, rbac.AccountModify); err2 != nil {
			return nil, err
		}
	}
	if err := s.requireSealKey(); err != nil {
		return nil, err
	}
	return &contracts.AccountKeyResponse{Header: contracts.NewHeader(contracts.TypeAccountKeyResponse), Key: s.accts.pub}, nil
}

func (s *Service) addAccount(ctx context.Context, from contracts.SubjectInfo, req *contracts.AccountAddRequest) (*contracts.AccountResponse, error) {
	perm := rbac.AccountCreate
	if req.Replace {
		perm = rbac.AccountModify
	}
	if err := s.authorize(from, perm); err != nil {
		return nil, err
	}
	if err := s.requireSealKey(); err != nil {
		return nil, err
	}
	secret, err := openSecret(s.accts.seal, req.Sealed, req.Sender)
	if err != nil {
		return nil, err
	}
	atRest, err := sealAtRest(s.accts.seal, secret)
	wipe(secret)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	rec := accountRecord{AccountInfo: contracts.AccountInfo{Purpose: req.Purpose, Name: req.Name, Created: now, CreatedBy: from.Principal}, Sealed: atRest}
	var info contracts.AccountInfo
	err = s.accts.change(ctx, req.Purpose, func(d *purposeDoc) error {
		var err error
		info, err = addAccount(d, rec, req.Replace)
		return err
	})
	if err != nil {
		return nil, err
	}
	action, statusID := contracts.AuditAccountAdded, contracts.StatusAccountAdded
	if req.Replace {
		action, statusID = contracts.AuditAccountReplaced, contracts.StatusAccountReplaced
	}
	s.audit(ctx, action, statusID, from.Principal, rbac.ObjAccount, req.Purpose+"/"+info.Name, map[string]string{"purpose": req.Purpose, "account": info.Name})
	return &contracts.AccountResponse{Header: contracts.NewHeader(contracts.TypeAccountResponse), Account: info}, nil
}

func (s *Service) listAccounts(ctx context.Context, from contracts.SubjectInfo, req *contracts.AccountListRequest) (*contracts.AccountListResponse, error) {
	if err := s.authorize(from, rbac.AccountRead); err != nil {
		return nil, err
	}
	purposes := contracts.AccountPurposes()
	if req.Purpose != "" {
		purposes = []string{req.Purpose}
	}
	out := &contracts.AccountListResponse{Header: contracts.NewHeader(contracts.TypeAccountListResponse), Accounts: []contracts.AccountInfo{}}
	for _, p := range purposes {
		d, _, err := s.accts.get(ctx, p)
		if err != nil {
			return nil, err
		}
		ordered(d.Accounts)
		for _, r := range d.Accounts {
			out.Accounts = append(out.Accounts, r.AccountInfo)
		}
	}
	return out, nil
}

func (s *Service) removeAccount(ctx context.Context, from contracts.SubjectInfo, req *contracts.AccountRemoveRequest) (*contracts.AccountResponse, error) {
	if err := s.authorize(from, rbac.AccountDelete); err != nil {
		return nil, err
	}
	var gone contracts.AccountInfo
	err := s.accts.change(ctx, req.Purpose, func(d *purposeDoc) error {
		i := slices.IndexFunc(d.Accounts, func(x accountRecord) bool { return strings.EqualFold(x.Name, req.Name) })
		if i < 0 {
			return contracts.Errorf(contracts.CodeNotFound, "no %s account %q", req.Purpose, req.Name)
		}
		gone = d.Accounts[i].AccountInfo
		d.Accounts = slices.Delete(d.Accounts, i, i+1)
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.audit(ctx, contracts.AuditAccountRemoved, contracts.StatusAccountRemoved, from.Principal, rbac.ObjAccount, req.Purpose+"/"+gone.Name, map[string]string{"purpose": req.Purpose, "account": gone.Name})
	return &contracts.AccountResponse{Header: contracts.NewHeader(contracts.TypeAccountResponse), Account: gone}, nil
}
