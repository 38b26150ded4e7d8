package integration

import (
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
)

// TestServicesAndAuditAreStatusMessages: every service reports its start,
// and operator actions and enrollments are audit status messages.
func TestServicesAndAuditAreStatusMessages(t *testing.T) {
	rs := startSite(t, t.TempDir(), freePort(t), "LAB")
	op := rs.operator(t)
	tok := rs.token(t, 1, time.Hour)
	a := startAgent(t, rs.URL(), tok, t.TempDir(), "web-01")
	wait(t, 15*time.Second, "agent enrolled", func() bool { return a.ClientID() != "" })
	if _, err := op.ClientsBlock(ctx(t), "web-01"); err != nil {
		t.Fatal(err)
	}

	list := func(f contracts.StatusFilter) []contracts.StatusMessage {
		resp, err := op.StatusList(ctx(t), contracts.StatusListRequest{Header: contracts.NewHeader(contracts.TypeStatusListRequest), Filter: f})
		if err != nil {
			return nil
		}
		return resp.Messages
	}
	wait(t, 15*time.Second, "admin, status and discovery started", func() bool {
		started := map[string]bool{}
		for _, m := range list(contracts.StatusFilter{MsgIDs: []int{contracts.StatusServiceStarted}}) {
			started[m.Component] = true
		}
		return started[contracts.ComponentAdmin] && started[contracts.ComponentStatus] && started[contracts.ComponentDiscovery]
	})
	want := map[int]string{contracts.StatusTokenCreated: "admin", contracts.StatusClientEnrolled: "", contracts.StatusClientBlocked: "admin"}
	wait(t, 15*time.Second, "token created, client enrolled and blocked as audit messages", func() bool {
		seen := 0
		for _, m := range list(contracts.StatusFilter{AuditOnly: true}) {
			by, ok := want[m.MsgID]
			if ok && m.Audit && m.Component == contracts.ComponentAdmin && m.Properties["by"] == by && m.Text != "" {
				seen++
			}
		}
		return seen == len(want)
	})
}
