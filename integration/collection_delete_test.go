package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stewardhq/steward/contracts"
)

// TestCollectionDeleteInUse: a collection with settings or a package
// deployed to it, or among an administrator's collections, is not deleted
// (it was, leaving those pointing at nothing); the refusal names each.
// Once they are gone it is deleted.
func TestCollectionDeleteInUse(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	admin := rs.operator(t)
	if _, err := admin.CollectionsCreate(ctx(t), contracts.CollectionCreateRequest{Name: "Linux", Queries: []string{`os.family == "linux"`}}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.SettingsApply(ctx(t), contracts.Settings{Name: "Lab remote tools", Priority: 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.SettingsDeploy(ctx(t), "Lab remote tools", "Linux"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a"), []byte("tool"), 0o644); err != nil {
		t.Fatal(err)
	}
	createPackage(t, admin, "tools", "1.0", dir)
	if _, err := admin.PackageDeploy(ctx(t), "tools", "1.0", "Linux", true); err != nil {
		t.Fatal(err)
	}
	rs.addOperator(t, admin, "lin", []string{contracts.RoleReadOnlyAnalyst}, []string{"Linux"})

	_, err := admin.CollectionsDelete(ctx(t), "Linux")
	for _, want := range []string{`settings "Lab remote tools" are deployed to it`, "package tools@1.0 is deployed to it", "1 administrative users or groups have it among their collections"} {
		if contracts.CodeOf(err) != contracts.CodeConflict || !strings.Contains(err.Error(), want) {
			t.Fatalf("delete of a collection in use: %v; want conflict naming %q", err, want)
		}
	}

	if _, err := admin.SettingsUndeploy(ctx(t), "Lab remote tools", "Linux"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.PackageDeploy(ctx(t), "tools", "1.0", "Linux", false); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.AdminsDelete(ctx(t), "lin"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CollectionsDelete(ctx(t), "Linux"); err != nil {
		t.Fatalf("delete once unused: %v", err)
	}
}
