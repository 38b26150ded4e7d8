package integration

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stewardhq/steward/contracts"
)

// forwardRaw sends m on steward.<dest>.site.<from>.status.forward over nc
// and returns the acknowledgement or the coded error.
func forwardRaw(t *testing.T, nc *nats.Conn, dest, from string, m contracts.StatusMessage) (contracts.StatusForwardAck, error) {
	t.Helper()
	subj, err := contracts.SiteSubject(dest, from, contracts.KindStatusForward)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	reply, err := nc.Request(subj, data, 10*time.Second)
	if err != nil {
		return contracts.StatusForwardAck{}, err
	}
	if code := reply.Header.Get(micro.ErrorCodeHeader); code != "" {
		return contracts.StatusForwardAck{}, &contracts.Error{Code: contracts.ParseCode(code), Message: reply.Header.Get(micro.ErrorHeader)}
	}
	var ack contracts.StatusForwardAck
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		t.Fatalf("ack: %v", err)
	}
	return ack, nil
}

// TestStatusForwardToParent: a filter rule at the child CHD with target
// parent makes a status message emitted at CHD appear in the parent PAR's
// status list, marked as forwarded from CHD and stored under CHD's identity,
// exactly once however often it is forwarded. The sending site is the
// subject's: a payload naming another site changes nothing, and a site that
// is not a linked child is refused.
func TestStatusForwardToParent(t *testing.T) {
	par, chd := startLinkedSites(t)
	pop, cop := par.operator(t), chd.operator(t)
	if _, err := cop.StatusRulesAdd(ctx(t), contracts.StatusRule{
		Name: "to-parent", Match: "id == 1001", Action: contracts.RuleForward, Target: contracts.ForwardParent,
	}); err != nil {
		t.Fatal(err)
	}
	chd.token(t, 1, time.Hour) // audit message 1001 (token created) at CHD

	listAt := func(rs *runningSite, f contracts.StatusFilter) []contracts.StatusMessage {
		var op = cop
		if rs == par {
			op = pop
		}
		resp, err := op.StatusList(ctx(t), contracts.StatusListRequest{Header: contracts.NewHeader(contracts.TypeStatusListRequest), Filter: f})
		if err != nil {
			return nil
		}
		return resp.Messages
	}

	var orig contracts.StatusMessage
	wait(t, 15*time.Second, "the token-created message at CHD", func() bool {
		l := listAt(chd, contracts.StatusFilter{MsgIDs: []int{contracts.StatusTokenCreated}})
		if len(l) == 0 {
			return false
		}
		orig = l[0]
		return true
	})
	fromCHD := contracts.StatusFilter{Sources: []string{"CHD"}, MsgIDs: []int{contracts.StatusTokenCreated}}
	var got contracts.StatusMessage
	wait(t, 15*time.Second, "the message forwarded to PAR", func() bool {
		for _, m := range listAt(par, fromCHD) {
			if m.ID == orig.ID {
				got = m
				return true
			}
		}
		return false
	})
	if got.ForwardedFrom != "CHD" || got.Source != "CHD" || got.Site != "PAR" || got.Client != "" ||
		got.Component != contracts.ComponentAdmin || !got.Audit || got.Text != orig.Text || !got.Time.Equal(orig.Time) ||
		got.Properties["by"] != orig.Properties["by"] {
		t.Errorf("at PAR: got %+v\nwant from CHD as %+v", got, orig)
	}

	// Forward again, as CHD's services do, over the leaf link: the resend
	// is acknowledged as a duplicate and stored once.
	inbox, _ := contracts.SiteInbox("CHD")
	siteNC := connectWithSeedFile(t, chd.URL(), filepath.Join(chd.dir, "keys", "service.nk"), "", nats.CustomInboxPrefix(inbox))
	ack, err := forwardRaw(t, siteNC, "PAR", "CHD", orig)
	if err != nil || ack.MessageID != orig.ID || !ack.Duplicate {
		t.Fatalf("resend: got %+v, %v; want a duplicate ack of %s", ack, err, orig.ID)
	}

	// A payload that names another site is stored as from CHD.
	forged := contracts.NewStatus(contracts.StatusTokenCreated, map[string]string{"token": "t", "uses": "1", "expires": "x", "by": "mallory"})
	forged.Component, forged.Severity, forged.Text = contracts.ComponentAdmin, contracts.SeverityInfo, "forged"
	forged.Site, forged.Source, forged.ForwardedFrom, forged.Instance = "ZZZ", "ZZZ", "ZZZ", "steward-admin/zzz"
	// Published as another site from CHD, it never crosses the link.
	if _, err := forwardRaw(t, siteNC, "PAR", "ZZZ", forged); err == nil {
		t.Error("CHD forwarded as site ZZZ: got an ack, want the link to refuse it")
	}
	if ack, err := forwardRaw(t, siteNC, "PAR", "CHD", forged); err != nil || ack.Duplicate {
		t.Fatalf("forged payload: got %+v, %v; want it stored", ack, err)
	}

	// At PAR itself, a site that is not a linked child is refused.
	parNC := connectWithSeedFile(t, par.URL(), filepath.Join(par.dir, "keys", "service.nk"), "")
	other := forged
	other.ID = contracts.NewHeader(contracts.TypeStatusMessage).ID
	if _, err := forwardRaw(t, parNC, "PAR", "ZZZ", other); contracts.CodeOf(err) != contracts.CodePermissionDenied {
		t.Errorf("from unlinked site ZZZ: got %v, want permission_denied", err)
	}

	count := map[string]int{}
	var stored contracts.StatusMessage
	for _, m := range listAt(par, contracts.StatusFilter{MsgIDs: []int{contracts.StatusTokenCreated}}) {
		count[m.ID]++
		if m.ID == forged.ID {
			stored = m
		}
	}
	if count[orig.ID] != 1 {
		t.Errorf("message %s at PAR: stored %d times, want once", orig.ID, count[orig.ID])
	}
	if count[forged.ID] != 1 || stored.ForwardedFrom != "CHD" || stored.Source != "CHD" || stored.Site != "PAR" {
		t.Errorf("forged payload at PAR: got %d, %+v; want it once, from CHD", count[forged.ID], stored)
	}
	if count[other.ID] != 0 {
		t.Errorf("message from unlinked ZZZ stored at PAR")
	}
	for _, m := range listAt(par, contracts.StatusFilter{Sources: []string{"ZZZ"}}) {
		t.Errorf("stored under ZZZ at PAR: %+v", m)
	}
}
