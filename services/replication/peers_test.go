package replication

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/rpc"
	"github.com/stewardhq/steward/services/internal/sitepeers"
)

// TestBusPeers asks a stand-in for admin's site-peers verb.
func TestBusPeers(t *testing.T) {
	par := newSite(t, "PAR", nil)
	var asked atomic.Int32
	peers := map[string]contracts.SitePeer{"CHD": {Site: "CHD", Role: contracts.PeerChild, SigningKey: "OKEY"}}
	fn := func(_ context.Context, _ contracts.SubjectInfo, req *contracts.SitePeersRequest) (*contracts.SitePeersResponse, error) {
		asked.Add(1)
		p, ok := peers[req.Site]
		if !ok {
			return nil, contracts.Errorf(contracts.CodeNotFound, "no peer %s", req.Site)
		}
		return &contracts.SitePeersResponse{Header: contracts.NewHeader(contracts.TypeSitePeersResponse), Peers: []contracts.SitePeer{p}}, nil
	}
	svc, err := rpc.AddService(par.nc, "PAR", sitepeers.AdminService, "0.0.1", "stand-in", []rpc.Endpoint{
		rpc.Route("site-peers", rpc.Svc(sitepeers.AdminService, contracts.VerbSitePeers), rpc.Handler(par.config().Log, contracts.TypeSitePeersRequest, fn)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })

	src := NewCachedPeers(BusPeers{NC: par.nc, Site: "PAR"}, time.Minute)
	ctx := context.Background()
	for range 3 {
		p, err := src.Peer(ctx, "CHD")
		if err != nil || p.SigningKey != "OKEY" || p.Role != contracts.PeerChild {
			t.Fatalf("Peer(CHD): %+v %v", p, err)
		}
	}
	if n := asked.Load(); n != 1 {
		t.Fatalf("admin asked %d times: want once (cached)", n)
	}
	for range 2 {
		if _, err := src.Peer(ctx, "XXX"); contracts.CodeOf(err) != contracts.CodeNotFound {
			t.Fatalf("Peer(XXX): got %v, want not_found", err)
		}
	}
	if n := asked.Load(); n != 3 {
		t.Fatalf("admin asked %d times: want failures not cached", n)
	}
	if _, err := (BusPeers{NC: par.nc, Site: "NOSITE"}).Peer(ctx, "CHD"); contracts.CodeOf(err) != contracts.CodeUnavailable {
		t.Fatalf("no admin: got %v, want unavailable", err)
	}
}

func TestRoutes(t *testing.T) {
	par := newSite(t, "PAR", nil)
	p := par.start()
	ctx := context.Background()
	for _, tt := range []struct {
		site, sched string
		rate        int64
		err         string
	}{
		{"CHD", "Mon-Fri 18:00-6:00", 0, "want HH:MM"},
		{"CHD", "", -1, "bytes per second"},
		{"CHD", "", 10, "at least"},
		{"PAR", "", 0, "itself"},
		{"C.D", "", 0, "site"},
	} {
		if _, err := p.SetRoute(ctx, tt.site, tt.rate, tt.sched, "alice"); contracts.CodeOf(err) != contracts.CodeBadRequest || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("SetRoute(%s, %d, %q): got %v, want bad_request about %q", tt.site, tt.rate, tt.sched, err, tt.err)
		}
	}
	r, err := p.SetRoute(ctx, "CHD", 1<<20, "sat,sun 00:00-24:00", "alice")
	if err != nil || r.Schedule != "Sat-Sun 00:00-24:00" || r.Rate != 1<<20 || r.By != "alice" {
		t.Fatalf("SetRoute: %+v %v", r, err)
	}
	if rs := p.Routes(); len(rs) != 1 || rs[0].Site != "CHD" {
		t.Fatalf("Routes: %+v", rs)
	}
	if d := p.Route("XYZ"); d.Rate != 0 || d.Schedule != "" || !d.Open {
		t.Fatalf("default route: %+v", d)
	}
	if err := p.DeleteRoute(ctx, "CHD", "alice"); err != nil || len(p.Routes()) != 0 {
		t.Fatalf("DeleteRoute: %v, %+v", err, p.Routes())
	}
	if err := p.DeleteRoute(ctx, "CHD", "alice"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("DeleteRoute again: got %v, want not_found", err)
	}
}
