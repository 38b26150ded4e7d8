package policy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
)

// bigSettings is a settings object of about 7.5 KB as JSON (within
// MaxSettingsBytes): 140 permitted viewers of 50 characters.
func bigSettings(i int) contracts.Settings {
	viewers := make([]string, 140)
	for j := range viewers {
		viewers[j] = fmt.Sprintf("viewer-%03d-%03d-%s", i, j, strings.Repeat("x", 36))
	}
	return contracts.Settings{Name: fmt.Sprintf("Big %d", i), Priority: 100 + i, SettingsSections: contracts.SettingsSections{
		RemoteTools: &contracts.RemoteToolsSettings{PermittedViewers: &viewers}}}
}

// TestCatalogOverMaxPayload: the catalog is one value, and the server
// carries at most max_payload in a message (64 KiB here, 1 MiB by
// default: some 130 objects of 8 KB). An apply that would make it larger
// is refused as too_large, saying how large and what to do, before
// anything is written; it failed with "internal error" (maximum payload
// exceeded) and no change that grew the catalog could be made. Deleting
// an object makes room again.
func TestCatalogOverMaxPayload(t *testing.T) {
	srv := natstest.Start(t, func(o *server.Options) { o.MaxPayload = 64 << 10 })
	ts := startTestSiteOn(t, srv, 1)
	var refused error
	created := 0
	for i := range 20 {
		var resp contracts.SettingsApplyResponse
		if err := ts.op(contracts.KindSettingsApply, applyReq(bigSettings(i)), &resp); err != nil {
			refused = err
			break
		}
		created++
	}
	want := fmt.Sprintf("over the %d the site's server carries in one message: delete or shrink settings objects", 64<<10-catalogHeadroom)
	if created < 5 || contracts.CodeOf(refused) != contracts.CodeTooLarge || !strings.Contains(refused.Error(), "the settings catalog would be ") || !strings.Contains(refused.Error(), want) {
		t.Fatalf("after %d objects: got %v, want too_large: ... %s", created, refused, want)
	}
	var lr contracts.SettingsListResponse
	if err := ts.op(contracts.KindSettingsList, contracts.SettingsListRequest{Header: contracts.NewHeader(contracts.TypeSettingsListRequest)}, &lr); err != nil || len(lr.Settings) != created+1 {
		t.Fatalf("list after the refusal: %v, %d objects, want %d", err, len(lr.Settings), created+1)
	}
	var sr contracts.SettingsResponse
	if err := ts.op(contracts.KindSettingsDelete, settingsReq("Big 0", false), &sr); err != nil {
		t.Fatalf("delete to make room: %v", err)
	}
	if r := ts.apply(t, bigSettings(created)); r.Result != contracts.ApplyCreated {
		t.Fatalf("apply after the delete: %+v", r)
	}
}
