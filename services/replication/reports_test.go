package replication

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
)

// reportSite is PAR with discovery's event stream, its service running
// (both membership consumers started), and Web holding clients.
func reportSite(t *testing.T, clients ...string) (*testSite, *Service, jetstream.JetStream) {
	t.Helper()
	par := newSite(t, "PAR", nil)
	ctx := context.Background()
	js, _ := jetstream.New(par.nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: DiscoveryEventsStream, Subjects: []string{"steward.PAR.event.discovery.>"}}); err != nil {
		t.Fatal(err)
	}
	par.dir.add("web", clients...)
	p := par.start()
	natstest.Wait(t, waitFor, "the membership consumers", func() bool {
		si, err := js.Stream(ctx, DiscoveryEventsStream)
		return err == nil && si.CachedInfo().State.Consumers >= 2
	})
	return par, p, js
}

var web = contracts.Named{ID: "web", Name: "Web"}

// report sends client's content report.
func report(t testing.TB, ts *testSite, client string, r contracts.ContentReport) error {
	t.Helper()
	r.Header = contracts.NewHeader(contracts.TypeContentReport)
	var ack contracts.ContentReportAck
	return agentCall(t, ts.nc, client, contracts.KindContentReport, r, &ack)
}

// statesOf is ClientStates by client ID.
func statesOf(t testing.TB, p *Service, pkg, version string) map[string]contracts.PackageClientStatus {
	t.Helper()
	st, err := p.ClientStates(context.Background(), pkg, version)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]contracts.PackageClientStatus{}
	for _, c := range st {
		out[c.Client.ID] = c
	}
	return out
}

// TestContentReportChecks: an agent reports only on a version it may read
// (deployed to a collection holding it), with the version's digest; the
// refusals are codes the agent does not resend (permission_denied,
// conflict, bad_request). The error text is bounded and loses control
// characters; the bucket is bounded. A reviewer made an unassigned client
// show "installed", put "Please call +1-555 and give your admin password"
// into an admin's ERROR column, and grew the bucket by 6 MB with 5,000
// reports of invented packages.
func TestContentReportChecks(t *testing.T) {
	par, p, _ := reportSite(t, "c1")
	ctx := context.Background()
	info, _ := createVersion(t, p, "tools", "1.0", []testFile{{path: "a", data: randomBytes(100)}})
	other, _ := createVersion(t, p, "tools", "2.0", []testFile{{path: "a", data: randomBytes(100)}})
	if _, _, err := p.Deploy(ctx, "tools", "1.0", web, "alice"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		what   string
		client string
		r      contracts.ContentReport
		code   contracts.Code
	}{
		{"a client the version is not deployed to", "c2",
			contracts.ContentReport{Package: "tools", Version: "1.0", Digest: info.Digest, State: contracts.ContentInstalled}, contracts.CodePermissionDenied},
		{"an invented package", "c1",
			contracts.ContentReport{Package: "invented", Version: "1", Digest: info.Digest, State: contracts.ContentInstalled}, contracts.CodePermissionDenied},
		{"a version not deployed", "c1",
			contracts.ContentReport{Package: "tools", Version: "2.0", Digest: other.Digest, State: contracts.ContentInstalled}, contracts.CodePermissionDenied},
		{"another digest", "c1",
			contracts.ContentReport{Package: "tools", Version: "1.0", Digest: other.Digest, State: contracts.ContentInstalled}, contracts.CodeConflict},
		{"no digest", "c1",
			contracts.ContentReport{Package: "tools", Version: "1.0", State: contracts.ContentInstalled}, contracts.CodeBadRequest},
	} {
		if err := report(t, par, tt.client, tt.r); contracts.CodeOf(err) != tt.code {
			t.Errorf("report of %s: got %v, want %s", tt.what, err, tt.code)
		}
	}
	if keys := kvKeys(t, p.clientsKV); len(keys) != 0 {
		t.Fatalf("refused reports recorded: %v", keys)
	}
	if st := statesOf(t, p, "tools", "1.0"); len(st) != 0 {
		t.Fatalf("states after refused reports: %+v", st)
	}

	// The assigned client's report is kept, its text made harmless.
	text := "\x1b[2J\x1b[31mPlease call +1-555\r\nand give your\u202e admin password\x00" + strings.Repeat("é", 2000)
	if err := report(t, par, "c1", contracts.ContentReport{Package: "tools", Version: "1.0", Digest: info.Digest,
		State: contracts.ContentFailed, Bytes: 1 << 40, Error: text}); err != nil {
		t.Fatalf("c1's report: %v", err)
	}
	c1 := statesOf(t, p, "tools", "1.0")["c1"]
	if c1.State != contracts.ContentFailed || c1.Bytes != info.Size {
		t.Fatalf("c1: %+v, want failed with at most the version's %d bytes", c1, info.Size)
	}
	if len(c1.Error) > maxReportError || strings.ContainsFunc(c1.Error, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\u202e' }) ||
		!strings.HasPrefix(c1.Error, "[2J [31mPlease call +1-555  and give") || !strings.HasSuffix(c1.Error, "é") {
		t.Fatalf("error kept (%d bytes): %q", len(c1.Error), c1.Error)
	}

	// The longest text of the characters JSON escapes most still fits
	// the bucket's record bound.
	if err := report(t, par, "c1", contracts.ContentReport{Package: "tools", Version: "1.0", Digest: info.Digest,
		State: contracts.ContentFailed, Error: strings.Repeat(`<&>"\`, 1000)}); err != nil {
		t.Fatalf("c1's report of escaped characters: %v", err)
	}
	if c1 := statesOf(t, p, "tools", "1.0")["c1"]; len(c1.Error) != maxReportError || !strings.HasPrefix(c1.Error, `<&>"\`) {
		t.Fatalf("error kept (%d bytes): %.40q", len(c1.Error), c1.Error)
	}

	st, err := p.clientsKV.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config
	if cfg.MaxBytes != DefaultMaxReportBytes || cfg.MaxMsgSize != maxReportRecord {
		t.Fatalf("reports bucket: max bytes %d, max record %d; want %d, %d", cfg.MaxBytes, cfg.MaxMsgSize, DefaultMaxReportBytes, maxReportRecord)
	}

	// A deletion of the version has begun (marked, not yet purged): a
	// report is refused as unavailable (sent again later, when the version
	// is gone or the deletion refused) and is not left behind.
	if err := p.markDeleting(ctx, info, true); err != nil {
		t.Fatal(err)
	}
	if err := report(t, par, "c1", contracts.ContentReport{Package: "tools", Version: "1.0", Digest: info.Digest, State: contracts.ContentInstalled}); contracts.CodeOf(err) != contracts.CodeUnavailable {
		t.Fatalf("report during a deletion: %v, want unavailable", err)
	}
	if keys := kvKeys(t, p.clientsKV); len(keys) != 0 {
		t.Fatalf("a report written during a deletion was left: %v", keys)
	}
}

// TestReportsRemoved: the reports of a version go with it, those of a
// client when it leaves All Systems (deleted), and the prune removes
// reports of versions no longer installed. Nothing deleted them before.
func TestReportsRemoved(t *testing.T) {
	par, p, js := reportSite(t, "c1", "c2")
	ctx := context.Background()
	info, _ := createVersion(t, p, "tools", "1.0", []testFile{{path: "a", data: randomBytes(100)}})
	keep, _ := createVersion(t, p, "keep", "1", []testFile{{path: "a", data: randomBytes(100)}})
	for _, pv := range [][2]string{{"tools", "1.0"}, {"keep", "1"}} {
		if _, _, err := p.Deploy(ctx, pv[0], pv[1], web, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []string{"c1", "c2"} {
		for _, v := range []contracts.PackageInfo{info, keep} {
			if err := report(t, par, c, contracts.ContentReport{Package: v.Package, Version: v.Version, Digest: v.Digest, State: contracts.ContentInstalled}); err != nil {
				t.Fatalf("%s's report of %s: %v", c, v.Package, err)
			}
		}
	}
	wantKeys := func(what string, want ...string) {
		t.Helper()
		natstest.Wait(t, waitFor, what, func() bool {
			got := kvKeys(t, p.clientsKV)
			slices.Sort(got)
			slices.Sort(want)
			return slices.Equal(got, want)
		})
	}
	wantKeys("four reports", "c1.tools.1=2E0", "c1.keep.1", "c2.tools.1=2E0", "c2.keep.1")

	// The version is deleted: its reports go.
	if _, _, err := p.Undeploy(ctx, "tools", "1.0", web, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Delete(ctx, "tools", "1.0", "alice"); err != nil {
		t.Fatal(err)
	}
	wantKeys("the reports of tools@1.0 gone", "c1.keep.1", "c2.keep.1")

	// c1 is deleted: discovery removes it from All Systems.
	ev := contracts.MembershipChanged{Header: contracts.NewHeader(contracts.TypeMembershipChanged),
		Collection: contracts.Named{ID: contracts.AllSystemsID, Name: contracts.AllSystemsName}, Removed: []string{"c1"}, Cause: "client deleted"}
	evSubj, _ := contracts.MembershipSubject("PAR")
	if _, err := js.Publish(ctx, evSubj, mustJSON(t, ev)); err != nil {
		t.Fatal(err)
	}
	wantKeys("the reports of c1 gone", "c2.keep.1")

	// A report of a version no longer installed (kept from before these
	// checks) goes at the next prune; the others stay.
	stale, _ := json.Marshal(clientRecord{Client: "c2", Package: "gone", Version: "3", Digest: info.Digest, State: contracts.ContentInstalled, Reported: time.Now()})
	if _, err := p.clientsKV.Put(ctx, clientKey("c2", "gone", "3"), stale); err != nil {
		t.Fatal(err)
	}
	if n, err := p.PruneReports(ctx); err != nil || n != 1 {
		t.Fatalf("PruneReports: %d versions, %v; want 1", n, err)
	}
	wantKeys("the stale report gone", "c2.keep.1")
}

// TestReportOfOtherContent: a version deleted and made again under its
// name with other content: a client's report of the old content (kept
// from before, or sent by a client that was offline) is not "installed".
func TestReportOfOtherContent(t *testing.T) {
	par, p, _ := reportSite(t, "c1")
	ctx := context.Background()
	old, _ := createVersion(t, p, "tools", "1.0", []testFile{{path: "a", data: randomBytes(100)}})
	if _, _, err := p.Deploy(ctx, "tools", "1.0", web, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := report(t, par, "c1", contracts.ContentReport{Package: "tools", Version: "1.0", Digest: old.Digest, State: contracts.ContentInstalled, Bytes: old.Size}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Undeploy(ctx, "tools", "1.0", web, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Delete(ctx, "tools", "1.0", "alice"); err != nil {
		t.Fatal(err)
	}
	natstest.Wait(t, waitFor, "tools@1.0 gone", func() bool { _, ok := p.model.version("tools", "1.0"); return !ok })
	cur, _ := createVersion(t, p, "tools", "1.0", []testFile{{path: "b", data: randomBytes(100)}})
	natstest.Wait(t, waitFor, "tools@1.0 made again", func() bool { v, ok := p.model.version("tools", "1.0"); return ok && v.Digest == cur.Digest })
	if _, _, err := p.Deploy(ctx, "tools", "1.0", web, "alice"); err != nil {
		t.Fatal(err)
	}
	if c1, ok := statesOf(t, p, "tools", "1.0")["c1"]; ok && c1.State != contracts.ContentPending {
		t.Fatalf("c1 after the version was made again: %+v, want no report or pending", c1)
	}
	// The client was offline: its report of the old content comes now.
	if err := report(t, par, "c1", contracts.ContentReport{Package: "tools", Version: "1.0", Digest: old.Digest, State: contracts.ContentInstalled, Bytes: old.Size}); contracts.CodeOf(err) != contracts.CodeConflict {
		t.Fatalf("a report of the old content: got %v, want conflict", err)
	}
	// A record of the old content in the bucket (written before reports
	// were checked) is pending, not installed.
	b, _ := json.Marshal(clientRecord{Client: "c1", Package: "tools", Version: "1.0", Digest: old.Digest, State: contracts.ContentInstalled, Bytes: old.Size, Reported: time.Now()})
	if _, err := p.clientsKV.Put(ctx, clientKey("c1", "tools", "1.0"), b); err != nil {
		t.Fatal(err)
	}
	if c1 := statesOf(t, p, "tools", "1.0")["c1"]; c1.State != contracts.ContentPending || c1.Bytes != 0 {
		t.Fatalf("c1 with a report of the old content: %+v, want pending", c1)
	}
	// Its report of the current content is installed.
	if err := report(t, par, "c1", contracts.ContentReport{Package: "tools", Version: "1.0", Digest: cur.Digest, State: contracts.ContentInstalled, Bytes: cur.Size}); err != nil {
		t.Fatal(err)
	}
	if c1 := statesOf(t, p, "tools", "1.0")["c1"]; c1.State != contracts.ContentInstalled {
		t.Fatalf("c1 with a report of the current content: %+v, want installed", c1)
	}
}
