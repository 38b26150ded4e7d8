package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
	"github.com/stewardhq/steward/services/site"
)

// TestSessionJoinAndEndAcrossBrokerInstances: with two broker instances,
// an operator's join or end of a session reaches whichever instance the
// queue group picks; the one that does not relay the session forwards it to
// the one that does. Every join and every end succeeds.
func TestSessionJoinAndEndAcrossBrokerInstances(t *testing.T) {
	l := startSessionLab(t, nil, nil)
	l.setPolicy(t, remoteTools(true, contracts.AccessFull, false, []string{"admin", "helen"}, nil))
	helen := l.rs.addOperator(t, l.admin, "helen", []string{contracts.RoleRemoteToolsOperator}, []string{contracts.AllSystemsName})

	// A second broker instance on the same site (scale-out mode).
	second, err := site.New(context.Background(), site.Config{DataDir: l.rs.dir, Server: l.rs.URL(), Services: []string{"sessions"}, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- second.Run(sctx) }()
	t.Cleanup(func() { stop(); <-done })
	nc := l.rs.serviceConn(t)
	wait(t, 15*time.Second, "two broker instances", func() bool {
		n := 0
		sub, err := nc.SubscribeSync(nc.NewRespInbox())
		if err != nil {
			return false
		}
		defer sub.Unsubscribe()
		if err := nc.PublishRequest("$SRV.PING.steward-sessions", sub.Subject, nil); err != nil {
			return false
		}
		for {
			if _, err := sub.NextMsg(300 * time.Millisecond); err != nil {
				return n == 2
			}
			n++
		}
	})
	nc.Close()

	const n = 10 // each lands on one of two instances: all on one is 2 in 1,024
	sessions := make([]*client.Session, n)
	for i := range sessions {
		s, err := l.admin.SessionOpen(ctx(t), contracts.SessionOpenRequest{Ref: "web-01", Kind: contracts.SessionShell, Command: []string{"cat"}})
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		sessions[i] = s
	}
	instances := map[string]bool{}
	for i, s := range sessions {
		instances[s.Info.Instance] = true
		w, err := helen.SessionJoin(ctx(t), s.Info.ID, true)
		if err != nil {
			t.Fatalf("join %d (relayed by %s): %v", i, s.Info.Instance, err)
		}
		if _, err := l.admin.SessionEnd(ctx(t), s.Info.ID, "done"); err != nil {
			t.Fatalf("end %d (relayed by %s): %v", i, s.Info.Instance, err)
		}
		for _, x := range []*client.Session{s, w} {
			select {
			case <-x.Done():
			case <-time.After(15 * time.Second):
				t.Fatalf("session %d: a participant never heard the end", i)
			}
		}
		if e := s.Ended(); e.By != "admin" || e.Abnormal {
			t.Fatalf("session %d ended %+v, want by admin", i, e)
		}
	}
	t.Logf("sessions were relayed by %d instances", len(instances))
	if _, err := l.admin.SessionEnd(ctx(t), sessions[0].Info.ID, ""); contracts.CodeOf(err) != contracts.CodeConflict {
		t.Fatalf("ending an ended session = %v, want conflict", err)
	}
}

// TestSessionEndsWhenTheOperatorGoesAway: an operator's CLI that dies
// without ending its session stops pinging; the broker ends the session
// (abnormally, audited) after contracts.SessionOperatorTimeout instead of
// leaving it open to the idle timeout, and the agent ends it too.
func TestSessionEndsWhenTheOperatorGoesAway(t *testing.T) {
	l := startSessionLab(t, nil, nil)
	l.setPolicy(t, remoteTools(true, contracts.AccessFull, false, []string{"admin"}, nil))
	cli, err := client.Connect(context.Background(), client.Options{Server: l.rs.URL(), Identity: l.rs.AdminIdentity()})
	if err != nil {
		t.Fatal(err)
	}
	s, err := cli.SessionOpen(ctx(t), contracts.SessionOpenRequest{Ref: "web-01", Kind: contracts.SessionShell, Command: []string{"cat"}})
	if err != nil {
		t.Fatal(err)
	}
	wait(t, 15*time.Second, "the session at the agent", func() bool { return len(l.agent.Sessions()) == 1 })
	// Pings keep a quiet session open past the operator timeout.
	time.Sleep(contracts.SessionOperatorTimeout + 2*time.Second)
	if open, err := l.admin.SessionList(ctx(t), ""); err != nil || len(open) != 1 {
		t.Fatalf("a quiet session whose CLI pings: active = %+v, %v; want it open", open, err)
	}
	cli.Close() // the CLI dies: no end frame, no more pings
	wait(t, contracts.SessionOperatorTimeout+15*time.Second, "the broker to end the session", func() bool {
		open, err := l.admin.SessionList(ctx(t), "")
		return err == nil && len(open) == 0
	})
	wait(t, 15*time.Second, "the agent to end the session", func() bool { return len(l.agent.Sessions()) == 0 })
	if m := l.auditOf(t, contracts.StatusSessionAbnormal, s.Info.ID); !strings.Contains(m.Text, "went away") {
		t.Fatalf("abnormal end audit: %+v", m)
	}
}
