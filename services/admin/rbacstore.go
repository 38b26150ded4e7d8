package admin

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/cas"
	"github.com/stewardhq/steward/services/rbac"
)

// rbacStore is the admin-rbac bucket: one document, changed by
// compare-and-set. The admin service is its only writer.
type rbacStore struct{ kv jetstream.KeyValue }

// exists reports whether a model is stored.
func (r *rbacStore) exists(ctx context.Context) (bool, error) {
	_, err := r.kv.Get(ctx, rbac.ModelKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// ensure writes the first model, with the bootstrap administrator as Full
// Administrator over All Systems, when there is none. It never touches an
// existing model: once the bootstrap administrator has been demoted or
// deleted by another Full Administrator, a restart does not bring it back.
func (r *rbacStore) ensure(ctx context.Context, bootstrap string) error {
	if _, err := r.kv.Get(ctx, rbac.ModelKey); err == nil || !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	doc := rbac.Document{Schema: rbac.Schema, Roles: []rbac.Role{}, Admins: []rbac.Admin{}}
	if bootstrap != "" {
		doc.Admins = append(doc.Admins, rbac.Admin{
			Name: "admin", Kind: contracts.AdminUser, Key: bootstrap,
			Description: "bootstrap administrator, created with the site",
			Roles:       []string{contracts.RoleFullAdministrator}, Collections: []contracts.Named{rbac.AllSystems},
			Created: time.Now().UTC(), CreatedBy: "site-init",
		})
	}
	if _, err := rbac.NewModel(doc, 0); err != nil {
		return err
	}
	_, err := r.kv.Create(ctx, rbac.ModelKey, rbac.Encode(doc))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil // another instance wrote it first
	}
	return err
}

// load returns the stored model.
func (r *rbacStore) load(ctx context.Context) (*rbac.Model, error) {
	e, err := r.kv.Get(ctx, rbac.ModelKey)
	if err != nil {
		return nil, err
	}
	return rbac.Decode(e.Value(), e.Revision())
}

// change applies fn to the current model and stores the document it
// returns, retrying when another instance changed the model first. Every
// change is checked as a whole: the new document must be a valid model,
// and it must keep a Full Administrator over All Systems.
func (r *rbacStore) change(ctx context.Context, fn func(cur *rbac.Model) (rbac.Document, error)) (prev, next *rbac.Model, err error) {
	for attempt := 0; attempt < 10; attempt++ {
		e, err := r.kv.Get(ctx, rbac.ModelKey)
		if err != nil {
			return nil, nil, err
		}
		cur, err := rbac.Decode(e.Value(), e.Revision())
		if err != nil {
			return nil, nil, err
		}
		doc, err := fn(cur)
		if err != nil {
			return nil, nil, err
		}
		next, err := rbac.NewModel(doc, 0)
		if err != nil {
			return nil, nil, contracts.Errorf(contracts.CodeBadRequest, "%v", err)
		}
		if err := cur.CheckFullAdministrator(next); err != nil {
			return nil, nil, err
		}
		rev, err := r.kv.Update(ctx, rbac.ModelKey, rbac.Encode(doc), e.Revision())
		if cas.Lost(err) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		next, err = rbac.NewModel(doc, rev)
		return cur, next, err
	}
	return nil, nil, contracts.Errorf(contracts.CodeConflict, "the administration model is contended; try again")
}
