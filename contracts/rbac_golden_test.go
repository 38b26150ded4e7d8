package contracts

import (
	"strings"
	"testing"
)

const exampleOperatorKey = "UOPERATORKEYEXAMPLEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

var exampleAdmin = AdminInfo{
	Name:                 "alice",
	Kind:                 AdminUser,
	Key:                  exampleOperatorKey,
	Description:          "helpdesk, first line",
	Roles:                []string{RoleRemoteToolsOperator},
	Collections:          []Named{{ID: exampleCollectionID, Name: "Web"}},
	MemberOf:             []string{"helpdesk"},
	Members:              []string{"bob"},
	Revoked:              true,
	Created:              t0,
	CreatedBy:            "admin",
	Updated:              t1,
	UpdatedBy:            "erin",
	EffectiveRoles:       []string{RoleReadOnlyAnalyst, RoleRemoteToolsOperator},
	EffectiveCollections: []Named{{ID: exampleCollectionID, Name: "Web"}, {ID: AllSystemsID, Name: AllSystemsName}},
	Permissions:          []string{"Collection:Read", "Collection:RemoteControl"},
}

var exampleRole = RoleInfo{
	Name:        "Helpdesk",
	Description: "remote control and inventory",
	BuiltIn:     true,
	Permissions: []string{"Collection:Read", "Collection:RemoteControl", "Collection:ViewInventory"},
	CopiedFrom:  RoleRemoteToolsOperator,
	Created:     t0,
	CreatedBy:   "erin",
	Updated:     t1,
	UpdatedBy:   "admin",
	Admins:      []string{"alice", "helpdesk"},
}

var exampleAccount = AccountInfo{
	Purpose:   PurposeNetworkAccess,
	Name:      `LAB\svc-content`,
	Created:   t0,
	CreatedBy: "admin",
	Rotated:   t1,
	RotatedBy: "erin",
}

func init() {
	goldenExamples[TypeAdminAddRequest] = &AdminAddRequest{
		Header:      hdr(TypeAdminAddRequest),
		Name:        "alice",
		Kind:        AdminUser,
		Key:         exampleOperatorKey,
		Description: "helpdesk, first line",
		Roles:       []string{RoleRemoteToolsOperator},
		Collections: []string{"Web"},
		MemberOf:    []string{"helpdesk"},
	}
	goldenExamples[TypeAdminUpdateRequest] = &AdminUpdateRequest{
		Header:            hdr(TypeAdminUpdateRequest),
		Name:              "alice",
		SetDescription:    true,
		Description:       "helpdesk, second line",
		AddRoles:          []string{"Helpdesk"},
		RemoveRoles:       []string{RoleRemoteToolsOperator},
		AddCollections:    []string{"Servers"},
		RemoveCollections: []string{"Web"},
		AddMemberOf:       []string{"night-shift"},
		RemoveMemberOf:    []string{"helpdesk"},
	}
	goldenExamples[TypeAdminRequest] = &AdminRequest{Header: hdr(TypeAdminRequest), Name: "alice"}
	goldenExamples[TypeAdminResponse] = &AdminResponse{Header: hdr(TypeAdminResponse), Admin: exampleAdmin}
	goldenExamples[TypeAdminListRequest] = &AdminListRequest{Header: hdr(TypeAdminListRequest)}
	goldenExamples[TypeAdminListResponse] = &AdminListResponse{Header: hdr(TypeAdminListResponse), Admins: []AdminInfo{exampleAdmin}}
	goldenExamples[TypeRoleRequest] = &RoleRequest{Header: hdr(TypeRoleRequest), Name: "Helpdesk"}
	goldenExamples[TypeRoleResponse] = &RoleResponse{Header: hdr(TypeRoleResponse), Role: exampleRole}
	goldenExamples[TypeRoleListRequest] = &RoleListRequest{Header: hdr(TypeRoleListRequest)}
	goldenExamples[TypeRoleListResponse] = &RoleListResponse{Header: hdr(TypeRoleListResponse), Roles: []RoleInfo{exampleRole}}
	goldenExamples[TypeRoleCopyRequest] = &RoleCopyRequest{
		Header:      hdr(TypeRoleCopyRequest),
		From:        RoleRemoteToolsOperator,
		Name:        "Helpdesk",
		Description: "remote control and inventory",
		Add:         []string{"Collection:ViewInventory"},
		Remove:      []string{"Session:ViewRecording"},
	}
	goldenExamples[TypeRoleUpdateRequest] = &RoleUpdateRequest{
		Header:         hdr(TypeRoleUpdateRequest),
		Name:           "Helpdesk",
		SetDescription: true,
		Description:    "remote control, inventory, status",
		Add:            []string{"StatusMessage:Read"},
		Remove:         []string{"Collection:ViewInventory"},
	}
	goldenExamples[TypeAccountKeyRequest] = &AccountKeyRequest{Header: hdr(TypeAccountKeyRequest)}
	goldenExamples[TypeAccountKeyResponse] = &AccountKeyResponse{
		Header: hdr(TypeAccountKeyResponse),
		Key:    "XSITESEALKEYEXAMPLEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	}
	goldenExamples[TypeAccountAddRequest] = &AccountAddRequest{
		Header:  hdr(TypeAccountAddRequest),
		Purpose: PurposeNetworkAccess,
		Name:    `LAB\svc-content`,
		Sealed:  []byte("xkv1 sealed box example"),
		Sender:  "XSENDERKEYEXAMPLEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		Replace: true,
	}
	goldenExamples[TypeAccountRemoveRequest] = &AccountRemoveRequest{
		Header:  hdr(TypeAccountRemoveRequest),
		Purpose: PurposeNetworkAccess,
		Name:    `LAB\svc-old`,
	}
	goldenExamples[TypeAccountResponse] = &AccountResponse{Header: hdr(TypeAccountResponse), Account: exampleAccount}
	goldenExamples[TypeAccountListRequest] = &AccountListRequest{Header: hdr(TypeAccountListRequest), Purpose: PurposeNetworkAccess}
	goldenExamples[TypeAccountListResponse] = &AccountListResponse{Header: hdr(TypeAccountListResponse), Accounts: []AccountInfo{exampleAccount}}
	goldenExamples[TypeAuditEvent] = &AuditEvent{
		Header:     hdr(TypeAuditEvent),
		Action:     AuditAdminAdded,
		StatusID:   StatusOperatorAdded,
		By:         "admin",
		Object:     "Administrator",
		Target:     "alice",
		Properties: map[string]string{"operator": "alice", "roles": RoleRemoteToolsOperator, "by": "admin"},
	}
}

func TestRBACKinds(t *testing.T) {
	for _, kind := range []string{
		KindAdminsAdd, KindAdminsUpdate, KindAdminsList, KindAdminsShow, KindAdminsRevoke, KindAdminsDelete,
		KindRolesList, KindRolesShow, KindRolesCopy, KindRolesUpdate, KindRolesDelete,
		KindAccountsKey, KindAccountsAdd, KindAccountsList, KindAccountsRemove,
	} {
		got, err := OpUp("LAB", "alice", kind)
		if err != nil || !strings.HasSuffix(got, "."+kind) {
			t.Errorf("OpUp(LAB, alice, %q): got %q, %v; want a subject ending in the kind", kind, got, err)
		}
	}
	if got, err := AuditSubject("LAB"); err != nil || got != "steward.LAB.event.admin.audit" {
		t.Errorf("AuditSubject(LAB): got %q, %v; want steward.LAB.event.admin.audit", got, err)
	}
}

func TestValidAdminName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"alice", true},
		{"svc-backup_2", true},
		{"A", true},
		{"", false},
		{"-alice", false},
		{"al ice", false},
		{"al.ice", false},
		{"al*", false},
		{`LAB\alice`, false},
		{strings.Repeat("a", 65), false},
		{"0195a3c4-0000-7000-8000-0000000000c1", false},                     // a client ID
		{"0195a3c40000700080000000000000c1", false},                         // a UUID without hyphens
		{"UAGENTKEYEXAMPLEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", false}, // an NKey
		{"root", false},                   // every Linux client's superuser
		{"Administrator", false},          // every Windows client's
		{"site-PAR", false},               // a site's inbox
		{"Site-par", false},               // names compare case-insensitively
		{"sitemanager", true},             // only "site-" is reserved
		{"Ob1dTwEGycA4zQkV3JwBb2", false}, // a service connection's inbox (a NUID)
		{"Ab3dEfGh1jKlMn0pQrStUv", false}, // 22 letters and digits
		{"ab3d-fgh1jklmn0pqrstuv", true},  // with a '-'
		{"Ab3dEfGh1jKlMn0pQrStU", true},   // 21
	}
	for _, tt := range tests {
		if err := ValidNewAdminName(tt.name); (err == nil) != tt.ok {
			t.Errorf("ValidNewAdminName(%q): got %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
	// A site that holds a name reserved since still loads it.
	for _, n := range []string{"root", "site-PAR", "Ob1dTwEGycA4zQkV3JwBb2"} {
		if err := ValidAdminName(n); err != nil {
			t.Errorf("ValidAdminName(%q) of a stored name: %v", n, err)
		}
	}
}

func TestAccountValidate(t *testing.T) {
	good := AccountAddRequest{Purpose: PurposeSMTP, Name: "mailer@lab.example", Sealed: []byte("x"), Sender: "XABC"}
	if err := good.Validate(); err != nil {
		t.Fatalf("good request: got %v, want nil", err)
	}
	bad := []func(r *AccountAddRequest){
		func(r *AccountAddRequest) { r.Purpose = "coffee" },
		func(r *AccountAddRequest) { r.Name = "" },
		func(r *AccountAddRequest) { r.Name = "a\nb" },
		func(r *AccountAddRequest) { r.Sealed = nil },
		func(r *AccountAddRequest) { r.Sealed = make([]byte, MaxSealedSecret+1) },
		func(r *AccountAddRequest) { r.Sender = "UABC" },
	}
	for i, mut := range bad {
		r := good
		mut(&r)
		if err := r.Validate(); err == nil {
			t.Errorf("bad request %d: got nil, want an error", i)
		}
	}
	if err := ValidAccountPurpose("coffee"); err == nil || !strings.Contains(err.Error(), PurposeNetworkAccess) {
		t.Errorf("unknown purpose: got %v, want an error listing the purposes", err)
	}
}
