package replication

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
	"github.com/stewardhq/steward/services/internal/rpc"
)

// agentCall sends an agent's request of kind as client.
func agentCall(t testing.TB, nc *nats.Conn, client, kind string, req, resp any) error {
	t.Helper()
	subj, err := contracts.AgentUp("PAR", client, kind)
	if err != nil {
		t.Fatal(err)
	}
	return rpc.Call(context.Background(), nc, subj, req, resp)
}

// agentChunk asks for a chunk as client and returns its bytes.
func agentChunk(t testing.TB, nc *nats.Conn, client, pkg, version, hash string) ([]byte, error) {
	t.Helper()
	subj, _ := contracts.AgentUp("PAR", client, contracts.KindContentChunk)
	msg := nats.NewMsg(subj)
	msg.Data = mustJSON(t, contracts.ContentChunkRequest{Header: contracts.NewHeader(contracts.TypeContentChunkRequest), Package: pkg, Version: version, Hash: hash})
	reply, err := rpc.CallMsg(context.Background(), nc, msg)
	if err != nil {
		return nil, err
	}
	if got := reply.Header.Get(contracts.HeaderChunk); got != hash {
		t.Fatalf("chunk answer header %s = %q, want %s", contracts.HeaderChunk, got, hash)
	}
	return reply.Data, nil
}

// contentList asks for client's list and checks the site's signature.
func contentList(t testing.TB, ts *testSite, client string) contracts.ContentList {
	t.Helper()
	var resp contracts.ContentListResponse
	if err := agentCall(t, ts.nc, client, contracts.KindContentList, contracts.ContentListRequest{Header: contracts.NewHeader(contracts.TypeContentListRequest)}, &resp); err != nil {
		t.Fatalf("content.list as %s: %v", client, err)
	}
	kp, _ := nkeys.FromPublicKey(ts.pub())
	if resp.Key != ts.pub() || kp.Verify(contracts.ContentListSigningInput(resp.List), resp.Signature) != nil {
		t.Fatalf("content list not signed by the site key")
	}
	var l contracts.ContentList
	if err := contracts.Decode(resp.List, contracts.TypeContentList, &l); err != nil {
		t.Fatal(err)
	}
	if l.Client != client || l.Site != "PAR" || l.Expires.Sub(l.Issued) != DefaultListValidity {
		t.Fatalf("list %+v: want client %s, site PAR, valid %s", l, client, DefaultListValidity)
	}
	return l
}

// downCounter counts the content.changed messages of a client.
func downCounter(t testing.TB, nc *nats.Conn, client string) func() int {
	t.Helper()
	subj, _ := contracts.AgentDown("PAR", client, contracts.KindContentChanged)
	ch := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe(subj, ch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	_ = nc.Flush()
	n := 0
	return func() int {
		for {
			select {
			case <-ch:
				n++
			default:
				return n
			}
		}
	}
}

func TestAgentContent(t *testing.T) {
	par := newSite(t, "PAR", nil)
	ctx := context.Background()
	// Discovery's stream of membership events, as discovery makes it.
	js, _ := jetstream.New(par.nc)
	evSubj, _ := contracts.MembershipSubject("PAR")
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: DiscoveryEventsStream, Subjects: []string{"steward.PAR.event.discovery.>"}}); err != nil {
		t.Fatal(err)
	}
	par.dir.add("web", "c1")
	p := par.start()
	info, chunks := createVersion(t, p, "tools", "1.0", []testFile{{path: "a", data: randomBytes(contracts.ChunkSize + 7)}})
	createVersion(t, p, "tools", "2.0", []testFile{{path: "a", data: randomBytes(9)}})
	var h string // a chunk of tools@1.0
	for k := range chunks {
		h = k
	}
	c1, c2 := downCounter(t, par.nc, "c1"), downCounter(t, par.nc, "c2")

	d, told, err := p.Deploy(ctx, "tools", "1.0", contracts.Named{ID: "web", Name: "Web"}, "alice")
	if err != nil || told != 1 || d.Collection.ID != "web" || d.By != "alice" {
		t.Fatalf("Deploy: %+v told %d, %v", d, told, err)
	}
	natstest.Wait(t, waitFor, "content.changed to c1", func() bool { return c1() == 1 })
	// Before it reports, the member is pending in the version's status
	// (the status listed only clients that had reported).
	st, err := p.opStatus(ctx, contracts.SubjectInfo{Site: "PAR", Space: "op", Principal: "alice"},
		&contracts.PackageRequest{Header: contracts.NewHeader(contracts.TypePackageRequest), Package: "tools", Version: "1.0"})
	if err != nil || len(st.Clients) != 1 || st.Clients[0].Client != (contracts.Named{ID: "c1", Name: "n-c1"}) || st.Clients[0].State != contracts.ContentPending {
		t.Fatalf("status before any report: %+v, %v; want c1 pending", st.Clients, err)
	}
	if _, _, err := p.Deploy(ctx, "tools", "1.0", contracts.Named{ID: "web", Name: "Web"}, "alice"); contracts.CodeOf(err) != contracts.CodeConflict {
		t.Fatalf("deploy twice: got %v, want conflict", err)
	}
	if _, err := p.Delete(ctx, "tools", "1.0", "alice"); contracts.CodeOf(err) != contracts.CodeConflict {
		t.Fatalf("delete a deployed version: got %v, want conflict", err)
	}

	// c1, in Web, gets the list, the manifest and the chunks.
	l := contentList(t, par, "c1")
	if len(l.Packages) != 1 || l.Packages[0].Digest != info.Digest || l.Packages[0].Size != info.Size {
		t.Fatalf("c1's list %+v: want tools@1.0 %s", l.Packages, info.Digest)
	}
	var mr contracts.ContentManifestResponse
	if err := agentCall(t, par.nc, "c1", contracts.KindContentManifest, contracts.ContentManifestRequest{
		Header: contracts.NewHeader(contracts.TypeContentManifestReq), Package: "tools", Version: "1.0"}, &mr); err != nil {
		t.Fatalf("manifest as c1: %v", err)
	}
	if mr.Manifest.Digest() != info.Digest || mr.Manifest.Key != par.pub() {
		t.Fatalf("manifest digest %s key %s: want %s signed by the site", mr.Manifest.Digest(), mr.Manifest.Key, info.Digest)
	}
	for hash, want := range chunks {
		got, err := agentChunk(t, par.nc, "c1", "tools", "1.0", hash)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("chunk %s as c1: %v", hash, err)
		}
	}
	// Only chunks of that version, and only deployed versions.
	other := contracts.ChunkHash([]byte("elsewhere"))
	if _, err := agentChunk(t, par.nc, "c1", "tools", "1.0", other); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("a chunk outside the version: got %v, want not_found", err)
	}
	if _, err := agentChunk(t, par.nc, "c1", "tools", "2.0", h); contracts.CodeOf(err) != contracts.CodePermissionDenied {
		t.Fatalf("an undeployed version: got %v, want permission_denied", err)
	}

	// c2 is in no collection with a deployment: refused.
	if l := contentList(t, par, "c2"); len(l.Packages) != 0 {
		t.Fatalf("c2's list %+v: want empty", l.Packages)
	}
	if err := agentCall(t, par.nc, "c2", contracts.KindContentManifest, contracts.ContentManifestRequest{
		Header: contracts.NewHeader(contracts.TypeContentManifestReq), Package: "tools", Version: "1.0"}, &mr); contracts.CodeOf(err) != contracts.CodePermissionDenied {
		t.Fatalf("manifest as c2: got %v, want permission_denied", err)
	}
	if _, err := agentChunk(t, par.nc, "c2", "tools", "1.0", h); contracts.CodeOf(err) != contracts.CodePermissionDenied {
		t.Fatalf("chunk as c2: got %v, want permission_denied", err)
	}

	// Reports are kept per client.
	var ack contracts.ContentReportAck
	if err := agentCall(t, par.nc, "c1", contracts.KindContentReport, contracts.ContentReport{Header: contracts.NewHeader(contracts.TypeContentReport),
		Package: "tools", Version: "1.0", Digest: info.Digest, State: contracts.ContentInstalled, Bytes: info.Size}, &ack); err != nil {
		t.Fatalf("report: %v", err)
	}
	if err := agentCall(t, par.nc, "c1", contracts.KindContentReport, contracts.ContentReport{Header: contracts.NewHeader(contracts.TypeContentReport),
		Package: "tools", Version: "1.0", State: "bogus"}, &ack); contracts.CodeOf(err) != contracts.CodeBadRequest {
		t.Fatalf("report of a bad state: got %v, want bad_request", err)
	}
	states, err := p.ClientStates(ctx, "tools", "1.0")
	if err != nil || len(states) != 1 || states[0].Client.ID != "c1" || states[0].State != contracts.ContentInstalled || states[0].Bytes != info.Size {
		t.Fatalf("ClientStates: %+v %v", states, err)
	}

	// c2 joins Web: discovery's event tells it to fetch, and it may read.
	natstest.Wait(t, waitFor, "the membership consumers", func() bool {
		si, err := js.Stream(ctx, DiscoveryEventsStream)
		return err == nil && si.CachedInfo().State.Consumers >= 2
	})
	par.dir.add("web", "c2")
	ev := contracts.MembershipChanged{Header: contracts.NewHeader(contracts.TypeMembershipChanged), Collection: contracts.Named{ID: "web", Name: "Web"}, Added: []string{"c2"}, Cause: "test"}
	if _, err := js.Publish(ctx, evSubj, mustJSON(t, ev)); err != nil {
		t.Fatal(err)
	}
	natstest.Wait(t, waitFor, "content.changed to c2", func() bool { return c2() == 1 })
	natstest.Wait(t, waitFor, "c2 allowed", func() bool {
		_, err := agentChunk(t, par.nc, "c2", "tools", "1.0", h)
		return err == nil
	})

	// Undeploy: both are told, and refused from then on.
	if _, told, err := p.Undeploy(ctx, "tools", "1.0", contracts.Named{ID: "web", Name: "Web"}, "alice"); err != nil || told != 2 {
		t.Fatalf("Undeploy: told %d, %v", told, err)
	}
	natstest.Wait(t, waitFor, "content.changed after the undeploy", func() bool { return c1() == 2 && c2() == 2 })
	if _, err := agentChunk(t, par.nc, "c1", "tools", "1.0", h); contracts.CodeOf(err) != contracts.CodePermissionDenied {
		t.Fatalf("chunk after the undeploy: got %v, want permission_denied", err)
	}
	if l := contentList(t, par, "c1"); len(l.Packages) != 0 {
		t.Fatalf("c1's list after the undeploy: %+v", l.Packages)
	}
	if _, err := p.Delete(ctx, "tools", "1.0", "alice"); err != nil {
		t.Fatalf("delete after the undeploy: %v", err)
	}

	// Made again with other content and deployed: agents are served the
	// new manifest and chunks, not what was served of the old one.
	natstest.Wait(t, waitFor, "tools@1.0 gone", func() bool { _, ok := p.model.version("tools", "1.0"); return !ok })
	info2, chunks2 := createVersion(t, p, "tools", "1.0", []testFile{{path: "b", data: randomBytes(11)}})
	if info2.Digest == info.Digest {
		t.Fatal("the same digest for other content")
	}
	if _, _, err := p.Deploy(ctx, "tools", "1.0", contracts.Named{ID: "web", Name: "Web"}, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := agentCall(t, par.nc, "c1", contracts.KindContentManifest, contracts.ContentManifestRequest{
		Header: contracts.NewHeader(contracts.TypeContentManifestReq), Package: "tools", Version: "1.0"}, &mr); err != nil {
		t.Fatalf("manifest as c1, made again: %v", err)
	}
	pub, _ := nkeys.FromPublicKey(par.pub())
	if mr.Manifest.Digest() != info2.Digest || pub.Verify(contracts.ManifestSigningInput(mr.Manifest.Manifest), mr.Manifest.Signature) != nil {
		t.Fatalf("manifest made again: digest %s (want %s), or its signature does not verify with the site key", mr.Manifest.Digest(), info2.Digest)
	}
	if _, err := agentChunk(t, par.nc, "c1", "tools", "1.0", h); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("a chunk of the old content: got %v, want not_found", err)
	}
	for hash, want := range chunks2 {
		if got, err := agentChunk(t, par.nc, "c1", "tools", "1.0", hash); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("chunk %s of the new content: %v", hash, err)
		}
	}
}

// TestServedVersionOnce: agents asking for one version at once share one
// read of it (the same cached entry), and a version made again with other
// content is read again.
func TestServedVersionOnce(t *testing.T) {
	par := newSite(t, "PAR", nil)
	p := par.start()
	ctx := context.Background()
	createVersion(t, p, "tools", "1.0", []testFile{{path: "a", data: randomBytes(100)}})
	natstest.Wait(t, waitFor, "the version in the model", func() bool { _, ok := p.model.version("tools", "1.0"); return ok })
	const n = 20
	got := make(chan *servedVersion, n)
	for range n {
		go func() {
			sv, err := p.servedVersion(ctx, "tools", "1.0")
			if err != nil {
				t.Error(err)
			}
			got <- sv
		}()
	}
	first := <-got
	for range n - 1 {
		if sv := <-got; sv != first {
			t.Fatal("requests at once read the version more than once")
		}
	}
	if _, err := p.Delete(ctx, "tools", "1.0", "alice"); err != nil {
		t.Fatal(err)
	}
	natstest.Wait(t, waitFor, "tools@1.0 gone", func() bool { _, ok := p.model.version("tools", "1.0"); return !ok })
	info2, _ := createVersion(t, p, "tools", "1.0", []testFile{{path: "b", data: randomBytes(100)}})
	natstest.Wait(t, waitFor, "the new version in the model", func() bool { v, ok := p.model.version("tools", "1.0"); return ok && v.Digest == info2.Digest })
	sv, err := p.servedVersion(ctx, "tools", "1.0")
	if err != nil {
		t.Fatal(err)
	}
	if sv.digest != info2.Digest || sv == first {
		t.Fatalf("after the version was made again: digest %s, want %s", sv.digest, info2.Digest)
	}
}

// TestDeleteAgainstDeployAndDistribute: a deletion marks its versions
// before it reads their deployments and jobs, and a deployment or
// distribution re-reads the version after writing: whichever comes second
// sees the other, so no deployment or job outlives its version. Each half
// is shown at the moment the other is in between.
func TestDeleteAgainstDeployAndDistribute(t *testing.T) {
	par := newSite(t, "PAR", nil)
	kid, _ := nkeys.CreateServer()
	kidPub, _ := kid.PublicKey()
	par.peers["CHD"] = contracts.SitePeer{Site: "CHD", Role: contracts.PeerChild, SigningKey: kidPub}
	p := par.start()
	ctx := context.Background()
	web := contracts.Named{ID: "web", Name: "Web"}
	createVersion(t, p, "tools", "1.0", []testFile{{path: "a", data: randomBytes(10)}})

	// A deletion has marked the version (and not yet purged it): a
	// deployment or distribution written now withdraws itself.
	info, _ := p.Info(ctx, "tools", "1.0")
	if err := p.markDeleting(ctx, info, true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Deploy(ctx, "tools", "1.0", web, "alice"); contracts.CodeOf(err) != contracts.CodeConflict || !strings.Contains(err.Error(), "being deleted") {
		t.Fatalf("deploy a version being deleted: got %v, want conflict", err)
	}
	if _, err := p.Distribute(ctx, "tools", "1.0", []string{"CHD"}, "alice"); contracts.CodeOf(err) != contracts.CodeConflict {
		t.Fatalf("distribute a version being deleted: got %v, want conflict", err)
	}
	if keys := kvKeys(t, p.deployKV); len(keys) != 0 {
		t.Fatalf("deployments left: %v", keys)
	}
	if keys := kvKeys(t, p.jobsKV); len(keys) != 0 {
		t.Fatalf("jobs left: %v", keys)
	}

	// A deployment was written and has not yet read the version again: the
	// deletion sees it and is refused, and the version loses its mark.
	if err := p.markDeleting(ctx, info, false); err != nil {
		t.Fatal(err)
	}
	d := contracts.PackageDeployment{Package: "tools", Version: "1.0", Collection: web, By: "bob", Created: time.Now()}
	b, _ := json.Marshal(d)
	rev, err := p.deployKV.Create(ctx, deploymentKey("tools", "1.0", "web"), b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Delete(ctx, "tools", "1.0", "alice"); contracts.CodeOf(err) != contracts.CodeConflict || !strings.Contains(err.Error(), "deployed to collection Web") {
		t.Fatalf("delete with a deployment written meanwhile: got %v, want conflict", err)
	}
	if err := p.stillInstalled(ctx, "tools", "1.0"); err != nil {
		t.Fatalf("after the refused deletion: %v, want the version installed and unmarked", err)
	}
	if err := p.deployKV.Purge(ctx, deploymentKey("tools", "1.0", "web"), jetstream.LastRevision(rev)); err != nil {
		t.Fatal(err)
	}
	// Undeployed, the version deletes; a deletion interrupted after its
	// mark is finished by deleting again.
	if err := p.markDeleting(ctx, info, true); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Delete(ctx, "tools", "1.0", "alice"); err != nil {
		t.Fatalf("delete again after an interrupted deletion: %v", err)
	}
	if _, err := p.Info(ctx, "tools", "1.0"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("after the deletion: %v, want not found", err)
	}
}

// kvKeys lists the keys of kv (none: empty).
func kvKeys(t testing.TB, kv jetstream.KeyValue) []string {
	t.Helper()
	keys, err := kv.ListKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for k := range keys.Keys() {
		out = append(out, k)
	}
	return out
}
