package sessions_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
)

// TestTunnelCheckedBeforeListening: `steward session tunnel` asks the
// broker (session.check: the decision of a tunnel's session, without a
// grant, a session or an audit) before it listens, so that an operator of
// the built-in Remote Tools Operator role, who may not read client
// settings, has a tunnel refused before anything listens: a port not in
// the client's tunnel ports, or a client outside the operator's scope
// (not found, as a missing client). The check tells no more than the
// session request: the same refusal, word for word. The CLI checked the
// client's policy itself, skipped that check on the role's
// permission_denied and listened, refusing every connection.
func TestTunnelCheckedBeforeListening(t *testing.T) {
	l := startLab(t)
	vm, away := l.agent("vm", true), l.agent("away", false)
	if _, err := l.admin.CollectionsCreate(ctxT(t), contracts.CollectionCreateRequest{Name: "Nobody", Queries: []string{`name == "no-such-client"`}}); err != nil {
		t.Fatal(err)
	}
	bobID, bob := l.operator("bob", []string{contracts.RoleRemoteToolsOperator}, []string{contracts.AllSystemsName})
	erinID, erin := l.operator("erin", []string{contracts.RoleRemoteToolsOperator}, []string{"Nobody"})
	l.setRemoteTools(contracts.RemoteToolsSettings{Enabled: ptr(true), AccessLevel: ptr(contracts.AccessFull),
		PermittedViewers: ptr([]string{"bob", "erin"}), TunnelPorts: ptr([]int{8080})}, vm, away)

	// The broker's check (promptUser is on by default: each connection
	// asks the user, for at most the default 30 s).
	ok, err := bob.SessionCheck(ctxT(t), "vm", contracts.SessionTunnel, 8080)
	if err != nil || ok.Client.ID != vm.id || ok.Access != contracts.AccessFull || !ok.Consent || time.Duration(ok.PromptTimeout) != 30*time.Second || ok.Port != 8080 {
		t.Fatalf("check of an allowed tunnel: got %+v, %v", ok, err)
	}
	refusals := []struct {
		name string
		c    *client.Client
		ref  string
		port int
		code contracts.Code
		text string
	}{
		{"a port not in the tunnel ports", bob, "vm", 8081, contracts.CodePolicyDenied, "port 8081 is not in the tunnel ports of vm (allowed: 8080)"},
		{"a client outside the operator's scope", erin, "vm", 8080, contracts.CodeNotFound, `no client named or with id "vm"`},
		{"a missing client", erin, "no-such-client", 8080, contracts.CodeNotFound, `no client named or with id "no-such-client"`},
		{"an offline client", bob, "away", 8080, contracts.CodeClientOffline, "client away is offline"},
	}
	checks := make([]error, len(refusals))
	for i, r := range refusals {
		_, err := r.c.SessionCheck(ctxT(t), r.ref, contracts.SessionTunnel, r.port)
		if contracts.CodeOf(err) != r.code || !strings.Contains(err.Error(), r.text) {
			t.Errorf("check, %s: got %v (code %v), want %v: %s", r.name, err, contracts.CodeOf(err), r.code, r.text)
		}
		checks[i] = err
	}

	// The CLI: refused before anything listens; an offline client only
	// warns (it may come back while the tunnel listens).
	listens := func(run *stewardRun) bool {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if strings.Contains(run.stderr.String(), "forwarding ") {
				return true
			}
			select {
			case <-run.done:
				return false
			case <-time.After(20 * time.Millisecond):
			}
		}
		t.Fatalf("the tunnel neither listened nor ended; stderr: %q", run.stderr.String())
		return false
	}
	for _, c := range []struct {
		name, identity, ref, port string
		code                      contracts.Code
		text                      string
	}{
		{"a port not in the tunnel ports", bobID, "vm", "8081", contracts.CodePolicyDenied, "not in the tunnel ports of vm"},
		{"a client outside the operator's scope", erinID, "vm", "8080", contracts.CodeNotFound, `no client named or with id "vm"`},
	} {
		run := l.steward(c.identity, "session", "tunnel", c.ref, "--port", c.port, "--local", "127.0.0.1:0")
		if listens(run) {
			t.Errorf("tunnel, %s: listened (%q)", c.name, run.stderr.String())
			run.cancel()
			<-run.done
			continue
		}
		if contracts.CodeOf(run.err) != c.code || !strings.Contains(run.err.Error(), c.text) {
			t.Errorf("tunnel, %s: got %v (code %v), want %v: %s", c.name, run.err, contracts.CodeOf(run.err), c.code, c.text)
		}
	}
	for _, c := range []struct{ ref, stderr string }{
		{"vm", "forwarding 127.0.0.1:"},
		{"away", "warning: client away is offline"},
	} {
		run := l.steward(bobID, "session", "tunnel", c.ref, "--port", "8080", "--local", "127.0.0.1:0")
		if !listens(run) {
			t.Errorf("tunnel to %s: ended with %v, stderr %q; want it to listen", c.ref, run.err, run.stderr.String())
			continue
		}
		if !strings.Contains(run.stderr.String(), c.stderr) {
			t.Errorf("tunnel to %s: stderr %q, want %q", c.ref, run.stderr.String(), c.stderr)
		}
		run.cancel()
		<-run.done
		if run.err != nil {
			t.Errorf("tunnel to %s stopped: %v", c.ref, run.err)
		}
	}

	// A check is not an action: nothing of the checks above is audited
	// (the session request below is, and is there after them).
	marker := uuid.NewString()
	if _, err := bob.SessionOpen(ctxT(t), contracts.SessionOpenRequest{Session: marker, Ref: "vm", Kind: contracts.SessionTunnel, Port: 8081}); contracts.CodeOf(err) != contracts.CodePolicyDenied {
		t.Fatalf("tunnel session to an unlisted port: got %v", err)
	}
	l.audit(t, contracts.StatusSessionDenied, marker)
	for _, id := range []int{contracts.StatusSessionRequested, contracts.StatusSessionDenied} {
		for _, m := range l.audits(t, id) {
			if m.Properties["session"] != marker {
				t.Errorf("audited besides the session request: %d %+v", id, m.Properties)
			}
		}
	}

	// The session requests are refused in the same words as their checks.
	for i, r := range refusals {
		_, err := r.c.SessionOpen(ctxT(t), contracts.SessionOpenRequest{Ref: r.ref, Kind: contracts.SessionTunnel, Port: r.port})
		if contracts.CodeOf(err) != contracts.CodeOf(checks[i]) || err == nil || checks[i] == nil || err.Error() != checks[i].Error() {
			t.Errorf("%s: the session request is refused with %v, its check with %v", r.name, err, checks[i])
		}
	}
}
