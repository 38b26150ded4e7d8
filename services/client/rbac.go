package client

import (
	"context"

	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
)

// validate checks a request before it is sent, as the site will.
func validate(req interface{ Validate() error }) error {
	if err := req.Validate(); err != nil {
		return contracts.Errorf(contracts.CodeBadRequest, "%v", err)
	}
	return nil
}

// AdminsAdd adds an administrative user (Kind user, with its public NKey)
// or group. Header is set here.
func (c *Client) AdminsAdd(ctx context.Context, req contracts.AdminAddRequest) (contracts.AdminInfo, error) {
	req.Header = contracts.NewHeader(contracts.TypeAdminAddRequest)
	if err := validate(&req); err != nil {
		return contracts.AdminInfo{}, err
	}
	var resp contracts.AdminResponse
	err := c.call(ctx, contracts.KindAdminsAdd, req, &resp)
	return resp.Admin, err
}

// AdminsUpdate changes an administrative user's or group's roles,
// collections, groups or description.
func (c *Client) AdminsUpdate(ctx context.Context, req contracts.AdminUpdateRequest) (contracts.AdminInfo, error) {
	req.Header = contracts.NewHeader(contracts.TypeAdminUpdateRequest)
	if err := validate(&req); err != nil {
		return contracts.AdminInfo{}, err
	}
	var resp contracts.AdminResponse
	err := c.call(ctx, contracts.KindAdminsUpdate, req, &resp)
	return resp.Admin, err
}

// AdminsList lists administrative users and groups by name; never nil.
func (c *Client) AdminsList(ctx context.Context) ([]contracts.AdminInfo, error) {
	var resp contracts.AdminListResponse
	if err := c.call(ctx, contracts.KindAdminsList, contracts.AdminListRequest{Header: contracts.NewHeader(contracts.TypeAdminListRequest)}, &resp); err != nil {
		return nil, err
	}
	if resp.Admins == nil {
		resp.Admins = []contracts.AdminInfo{}
	}
	return resp.Admins, nil
}

// AdminsShow returns one administrative user or group.
func (c *Client) AdminsShow(ctx context.Context, name string) (contracts.AdminInfo, error) {
	return c.adminRequest(ctx, contracts.KindAdminsShow, name)
}

// AdminsRevoke revokes a user: the site closes its connections and refuses
// its reconnects and requests. It returns the user as revoked.
func (c *Client) AdminsRevoke(ctx context.Context, name string) (contracts.AdminInfo, error) {
	return c.adminRequest(ctx, contracts.KindAdminsRevoke, name)
}

// AdminsDelete deletes a user (and its identity) or group; it returns it
// as it was.
func (c *Client) AdminsDelete(ctx context.Context, name string) (contracts.AdminInfo, error) {
	return c.adminRequest(ctx, contracts.KindAdminsDelete, name)
}

func (c *Client) adminRequest(ctx context.Context, kind, name string) (contracts.AdminInfo, error) {
	req := contracts.AdminRequest{Header: contracts.NewHeader(contracts.TypeAdminRequest), Name: name}
	if err := validate(&req); err != nil {
		return contracts.AdminInfo{}, err
	}
	var resp contracts.AdminResponse
	err := c.call(ctx, kind, req, &resp)
	return resp.Admin, err
}

// RolesList lists the security roles: built-in ones first.
func (c *Client) RolesList(ctx context.Context) ([]contracts.RoleInfo, error) {
	var resp contracts.RoleListResponse
	if err := c.call(ctx, contracts.KindRolesList, contracts.RoleListRequest{Header: contracts.NewHeader(contracts.TypeRoleListRequest)}, &resp); err != nil {
		return nil, err
	}
	if resp.Roles == nil {
		resp.Roles = []contracts.RoleInfo{}
	}
	return resp.Roles, nil
}

// RolesShow returns one role.
func (c *Client) RolesShow(ctx context.Context, name string) (contracts.RoleInfo, error) {
	return c.roleRequest(ctx, contracts.KindRolesShow, name)
}

// RolesDelete deletes a custom role nobody holds.
func (c *Client) RolesDelete(ctx context.Context, name string) (contracts.RoleInfo, error) {
	return c.roleRequest(ctx, contracts.KindRolesDelete, name)
}

func (c *Client) roleRequest(ctx context.Context, kind, name string) (contracts.RoleInfo, error) {
	req := contracts.RoleRequest{Header: contracts.NewHeader(contracts.TypeRoleRequest), Name: name}
	if err := validate(&req); err != nil {
		return contracts.RoleInfo{}, err
	}
	var resp contracts.RoleResponse
	err := c.call(ctx, kind, req, &resp)
	return resp.Role, err
}

// RolesCopy makes a custom role from a copy of another, changed.
func (c *Client) RolesCopy(ctx context.Context, req contracts.RoleCopyRequest) (contracts.RoleInfo, error) {
	req.Header = contracts.NewHeader(contracts.TypeRoleCopyRequest)
	if err := validate(&req); err != nil {
		return contracts.RoleInfo{}, err
	}
	var resp contracts.RoleResponse
	err := c.call(ctx, contracts.KindRolesCopy, req, &resp)
	return resp.Role, err
}

// RolesUpdate changes a custom role.
func (c *Client) RolesUpdate(ctx context.Context, req contracts.RoleUpdateRequest) (contracts.RoleInfo, error) {
	req.Header = contracts.NewHeader(contracts.TypeRoleUpdateRequest)
	if err := validate(&req); err != nil {
		return contracts.RoleInfo{}, err
	}
	var resp contracts.RoleResponse
	err := c.call(ctx, contracts.KindRolesUpdate, req, &resp)
	return resp.Role, err
}

// AccountsKey returns the site's public curve key, to which secrets are
// sealed.
func (c *Client) AccountsKey(ctx context.Context) (string, error) {
	var resp contracts.AccountKeyResponse
	if err := c.call(ctx, contracts.KindAccountsKey, contracts.AccountKeyRequest{Header: contracts.NewHeader(contracts.TypeAccountKeyRequest)}, &resp); err != nil {
		return "", err
	}
	if !nkeys.IsValidPublicCurveKey(resp.Key) {
		return "", contracts.Errorf(contracts.CodeInternal, "the site's seal key %q is not a curve key", resp.Key)
	}
	return resp.Key, nil
}

// AccountsAdd adds a site account, or with replace replaces the secret of
// an existing one. The secret is sealed here, with a key made for this one
// message, to the site's curve key: it never crosses the bus in plain text.
// The caller should wipe secret afterwards.
func (c *Client) AccountsAdd(ctx context.Context, purpose, name string, secret []byte, replace bool) (contracts.AccountInfo, error) {
	siteKey, err := c.AccountsKey(ctx)
	if err != nil {
		return contracts.AccountInfo{}, err
	}
	eph, err := nkeys.CreateCurveKeys()
	if err != nil {
		return contracts.AccountInfo{}, err
	}
	defer eph.Wipe()
	sender, _ := eph.PublicKey()
	sealed, err := eph.Seal(secret, siteKey)
	if err != nil {
		return contracts.AccountInfo{}, err
	}
	req := contracts.AccountAddRequest{Header: contracts.NewHeader(contracts.TypeAccountAddRequest), Purpose: purpose, Name: name, Sealed: sealed, Sender: sender, Replace: replace}
	if err := validate(&req); err != nil {
		return contracts.AccountInfo{}, err
	}
	var resp contracts.AccountResponse
	err = c.call(ctx, contracts.KindAccountsAdd, req, &resp)
	return resp.Account, err
}

// AccountsList lists the accounts of purpose ("" for all), newest first
// within a purpose; never nil. Secrets are never listed.
func (c *Client) AccountsList(ctx context.Context, purpose string) ([]contracts.AccountInfo, error) {
	req := contracts.AccountListRequest{Header: contracts.NewHeader(contracts.TypeAccountListRequest), Purpose: purpose}
	if err := validate(&req); err != nil {
		return nil, err
	}
	var resp contracts.AccountListResponse
	if err := c.call(ctx, contracts.KindAccountsList, req, &resp); err != nil {
		return nil, err
	}
	if resp.Accounts == nil {
		resp.Accounts = []contracts.AccountInfo{}
	}
	return resp.Accounts, nil
}

// AccountsRemove removes one account of purpose.
func (c *Client) AccountsRemove(ctx context.Context, purpose, name string) (contracts.AccountInfo, error) {
	req := contracts.AccountRemoveRequest{Header: contracts.NewHeader(contracts.TypeAccountRemoveRequest), Purpose: purpose, Name: name}
	if err := validate(&req); err != nil {
		return contracts.AccountInfo{}, err
	}
	var resp contracts.AccountResponse
	err := c.call(ctx, contracts.KindAccountsRemove, req, &resp)
	return resp.Account, err
}
