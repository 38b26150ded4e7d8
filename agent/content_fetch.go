package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
)

// fetchAndInstall fetches the manifest of asg, checks it and the space it
// needs, stages the version's files (resuming what an earlier attempt
// staged) and installs it. It returns the version's size and where it is.
func (a *Agent) fetchAndInstall(ctx context.Context, nc *nats.Conn, id state.Identity, asg contracts.ContentAssignment) (int64, string, error) {
	key := contracts.PackageKey(asg.Package, asg.Version)
	if asg.Size > a.cfg.ContentMax {
		return 0, "", fmt.Errorf("refused before download: %s is %s, over this agent's limit of %s", key, contracts.HumanBytes(asg.Size), contracts.HumanBytes(a.cfg.ContentMax))
	}
	m, err := a.fetchManifest(ctx, nc, id, asg)
	if err != nil {
		return 0, "", err
	}
	if m.Size > a.cfg.ContentMax {
		return 0, "", fmt.Errorf("refused before download: %s is %s by its manifest, over this agent's limit of %s", key, contracts.HumanBytes(m.Size), contracts.HumanBytes(a.cfg.ContentMax))
	}
	st, err := newStager(a.content.dir, m)
	if err != nil {
		return 0, "", err
	}
	if err := a.checkSpace(st, m); err != nil {
		return 0, "", err
	}
	st.fetch = func(ctx context.Context, hash string, size int64) ([]byte, error) {
		return a.fetchChunk(ctx, nc, id, asg, hash, size)
	}
	st.progress = func(n int64) { a.content.addProgress(key, n) }
	if err := st.stage(ctx); err != nil {
		if !isRetryable(err) && ctx.Err() == nil {
			st.discard() // nothing of a failed version stays
		}
		return 0, "", err
	}
	if err := st.install(); err != nil {
		st.discard()
		return 0, "", err
	}
	return m.Size, st.dest, nil
}

// checkSpace refuses a version whose files do not fit the content
// directory's file system, keeping contentReserve free, before anything is
// fetched.
func (a *Agent) checkSpace(st *stager, m *contracts.Manifest) error {
	if err := os.MkdirAll(a.content.dir, 0o755); err != nil {
		return fmt.Errorf("content directory: %w", err)
	}
	free, err := a.content.freeSpace(a.content.dir)
	if err != nil || free < 0 {
		a.log.Debug("free disk space unknown; not checked", "dir", a.content.dir, "err", err)
		return nil
	}
	need := max(m.Size-st.staged(), 0)
	if need+contentReserve > free {
		return fmt.Errorf("refused before download: %s needs %s more, but %s has %s free (keeping %s spare)",
			contracts.PackageKey(m.Package, m.Version), contracts.HumanBytes(need), a.content.dir, contracts.HumanBytes(free), contracts.HumanBytes(contentReserve))
	}
	return nil
}

// fetchManifest asks for the manifest of asg and checks it (verifyManifest).
func (a *Agent) fetchManifest(ctx context.Context, nc *nats.Conn, id state.Identity, asg contracts.ContentAssignment) (*contracts.Manifest, error) {
	req := contracts.ContentManifestRequest{Header: contracts.NewHeader(contracts.TypeContentManifestReq), Package: asg.Package, Version: asg.Version}
	reply, err := a.contentRequest(ctx, nc, id, contracts.KindContentManifest, req, contentRequestTimeout)
	if err != nil {
		return nil, err
	}
	return verifyManifest(reply.Data, asg, id)
}

// verifyManifest checks data, a contracts.ContentManifestResponse as
// received, against the assignment asg from a verified content list. The
// manifest is trusted because its digest is the one the list names: the
// manifest's own signature is by the site that sent it to this site, whose
// key the agent does not know; when it is the agent's own site key the
// signature must verify too. Then the manifest must be of the version
// assigned and pass Validate and checkContentPaths.
func verifyManifest(data []byte, asg contracts.ContentAssignment, id state.Identity) (*contracts.Manifest, error) {
	key := contracts.PackageKey(asg.Package, asg.Version)
	if len(data) > maxContentReply {
		return nil, fmt.Errorf("manifest answer of %d bytes: over the %d-byte limit", len(data), maxContentReply)
	}
	var resp contracts.ContentManifestResponse
	if err := json.Unmarshal(data, &resp); err != nil {
		return nil, fmt.Errorf("not a manifest answer: %v", err)
	}
	if resp.Type != contracts.TypeContentManifestResp {
		return nil, fmt.Errorf("message type %q, want %q", resp.Type, contracts.TypeContentManifestResp)
	}
	sm := resp.Manifest
	if len(sm.Manifest) == 0 || len(sm.Manifest) > contracts.MaxManifestBytes {
		return nil, fmt.Errorf("manifest of %d bytes: want 1 to %d", len(sm.Manifest), contracts.MaxManifestBytes)
	}
	if got := sm.Digest(); got != asg.Digest {
		return nil, fmt.Errorf("the manifest of %s has digest %s, but the signed content list names %s", key, got, asg.Digest)
	}
	if sm.Key == id.SiteKey {
		site, err := nkeys.FromPublicKey(id.SiteKey)
		if err != nil {
			return nil, fmt.Errorf("the pinned site key %q is unusable: %v", id.SiteKey, err)
		}
		if err := site.Verify(contracts.ManifestSigningInput(sm.Manifest), sm.Signature); err != nil {
			return nil, fmt.Errorf("the manifest of %s claims the pinned site key %s, but its signature does not verify", key, id.SiteKey)
		}
	}
	var m contracts.Manifest
	if err := json.Unmarshal(sm.Manifest, &m); err != nil {
		return nil, fmt.Errorf("manifest of %s unreadable: %v", key, err)
	}
	switch {
	case m.Type != contracts.TypeManifest:
		return nil, fmt.Errorf("manifest of type %q, want %q", m.Type, contracts.TypeManifest)
	case m.Package != asg.Package || m.Version != asg.Version:
		return nil, fmt.Errorf("the manifest is of %s, not %s", contracts.PackageKey(m.Package, m.Version), key)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", key, err)
	}
	if err := checkContentPaths(&m); err != nil {
		return nil, fmt.Errorf("manifest of %s: %w", key, err)
	}
	return &m, nil
}

// checkContentPaths checks the manifest's paths again, as this agent will
// write them, beyond Validate: every path is local on this system
// (filepath.IsLocal: not absolute, no "..", no reserved names), no path
// lies under a link, and every link's target, resolved from the link's
// directory, stays inside the package without passing through another
// link (whose own target could lead elsewhere than its name suggests).
func checkContentPaths(m *contracts.Manifest) error {
	links := map[string]bool{}
	for _, l := range m.Links {
		links[l.Path] = true
	}
	paths := make([]string, 0, len(m.Files)+len(m.Links))
	for _, f := range m.Files {
		paths = append(paths, f.Path)
	}
	for _, l := range m.Links {
		paths = append(paths, l.Path)
	}
	for _, p := range paths {
		if err := contracts.ValidPackagePath(p); err != nil {
			return err
		}
		if !filepath.IsLocal(filepath.FromSlash(p)) {
			return fmt.Errorf("path %q is not inside the package on this system", p)
		}
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if links[d] {
				return fmt.Errorf("path %q lies under the link %q", p, d)
			}
		}
	}
	for _, l := range m.Links {
		if err := checkLinkTarget(l.Path, l.Target, links); err != nil {
			return err
		}
	}
	return nil
}

func checkLinkTarget(p, target string, links map[string]bool) error {
	escapes := fmt.Errorf("link %q -> %q escapes the package", p, target)
	if target == "" || path.IsAbs(target) || filepath.IsAbs(target) || filepath.VolumeName(target) != "" || strings.ContainsRune(target, '\\') {
		return escapes
	}
	var cur []string
	if d := path.Dir(p); d != "." {
		cur = strings.Split(d, "/")
	}
	elems := strings.Split(target, "/")
	for i, el := range elems {
		switch el {
		case "", ".":
		case "..":
			if len(cur) == 0 {
				return escapes
			}
			cur = cur[:len(cur)-1]
		default:
			cur = append(cur, el)
			if links[strings.Join(cur, "/")] && moreElements(elems[i+1:]) {
				return fmt.Errorf("link %q -> %q passes through the link %q", p, target, strings.Join(cur, "/"))
			}
		}
	}
	if resolved := path.Join(path.Dir(p), target); !filepath.IsLocal(filepath.FromSlash(resolved)) {
		return escapes
	}
	return nil
}

func moreElements(rest []string) bool {
	for _, el := range rest {
		if el != "" && el != "." {
			return true
		}
	}
	return false
}

// fetchChunk asks for one chunk of asg and verifies it: the answer names
// the chunk asked for, has the size the manifest gives it, and hashes to it.
func (a *Agent) fetchChunk(ctx context.Context, nc *nats.Conn, id state.Identity, asg contracts.ContentAssignment, hash string, size int64) ([]byte, error) {
	req := contracts.ContentChunkRequest{Header: contracts.NewHeader(contracts.TypeContentChunkRequest), Package: asg.Package, Version: asg.Version, Hash: hash}
	reply, err := a.contentRequest(ctx, nc, id, contracts.KindContentChunk, req, chunkRequestTimeout)
	if err != nil {
		return nil, err
	}
	switch got := reply.Header.Get(contracts.HeaderChunk); {
	case got != hash:
		return nil, fmt.Errorf("chunk %s: the answer is chunk %q", hash, truncate(got, 80))
	case int64(len(reply.Data)) != size:
		return nil, fmt.Errorf("chunk %s: %d bytes received, the manifest says %d", hash, len(reply.Data), size)
	}
	if got := contracts.ChunkHash(reply.Data); got != hash {
		return nil, fmt.Errorf("chunk %s: the bytes received hash to %s (damaged or tampered with)", hash, got)
	}
	return reply.Data, nil
}
