package replication

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
)

// Client reports (ClientsBucket, key "<client>.<package>.<version>"). A
// client may report only on a version it may read (deployed to a
// collection holding it, the check manifests and chunks get) and only
// with the version's current digest, so the bucket holds at most one
// record per client and version assigned to it, each under
// maxReportRecord bytes, and the bucket itself is bounded
// (Config.MaxReportBytes). A version's reports go when it is deleted, a
// client's when it leaves All Systems (deleted or blocked), and the prune
// removes the reports of versions no longer installed (an interrupted
// deletion, reports kept from before these checks).

// DefaultMaxReportBytes bounds ClientsBucket: about 1.5 million reports
// of a typical size (350 bytes), 360,000 with the longest error text.
const DefaultMaxReportBytes int64 = 512 << 20

// maxReportRecord bounds one record in ClientsBucket (its longest is
// about 1,500 bytes: a report with maxReportError bytes of error).
const maxReportRecord = 4 << 10

// reportText is an agent's error text as kept: control and format
// characters (a terminal's escape sequences, bidirectional overrides, line
// separators) become spaces, invalid UTF-8
// is replaced, and it is cut at a character boundary to at most
// maxReportError bytes.
func reportText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	var b strings.Builder
	for _, r := range s {
		if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp) {
			r = ' '
		}
		if b.Len()+utf8.RuneLen(r) > maxReportError {
			break
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}

// encodeReport writes a record without escaping '<', '>' and '&' (six
// bytes each): an error text of maxReportError bytes then takes at most
// twice that ('"' and '\\'), and the record stays under maxReportRecord.
func encodeReport(rec clientRecord) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rec); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// checkReport refuses a report client may not make on v: a version it may
// not read, or a digest that is not the version's (a report from before
// the version was made again).
func (s *Service) checkReport(ctx context.Context, client string, req *contracts.ContentReport) (contracts.PackageInfo, error) {
	if err := s.mayRead(ctx, client, req.Package, req.Version); err != nil {
		return contracts.PackageInfo{}, err
	}
	v, ok := s.model.version(req.Package, req.Version)
	if !ok {
		return v, contracts.Errorf(contracts.CodeNotFound, "no package %s", contracts.PackageKey(req.Package, req.Version))
	}
	if v.Digest != req.Digest {
		return v, contracts.Errorf(contracts.CodeConflict, "%s is now the content with digest %s, not %s: this report is of content the site no longer has",
			contracts.PackageKey(req.Package, req.Version), v.Digest, req.Digest)
	}
	return v, nil
}

// confirmReport runs after a report is written: the version is taken as
// the bucket holds it now (versionNow) and the client's collections asked
// afresh. A
// deletion of the version or of the client that began before the write
// is seen here (and the report withdrawn); one that begins after it
// removes the report itself (Delete, onMembership).
func (s *Service) confirmReport(ctx context.Context, client string, req *contracts.ContentReport) error {
	name := contracts.PackageKey(req.Package, req.Version)
	v, deleting, err := s.versionNow(ctx, req.Package, req.Version)
	switch {
	case err != nil:
		return err
	case deleting:
		return contracts.Errorf(contracts.CodeUnavailable, "%s is being deleted: report again later", name)
	case v.Digest != req.Digest:
		return contracts.Errorf(contracts.CodeConflict, "%s is now the content with digest %s, not %s", name, v.Digest, req.Digest)
	}
	if _, err := s.members.collections(ctx, client, true); err != nil {
		return membershipError(err)
	}
	return nil
}

// reportsStream is the stream of ClientsBucket: reports are removed by
// subject, which leaves no delete markers behind.
func (s *Service) reportsStream(ctx context.Context) (jetstream.Stream, error) {
	return s.js.Stream(ctx, "KV_"+ClientsBucket)
}

// purgeReports removes the reports whose keys match filter (a key with
// wildcards).
func (s *Service) purgeReports(ctx context.Context, filter string) error {
	st, err := s.reportsStream(ctx)
	if err == nil {
		err = st.Purge(ctx, jetstream.WithPurgeSubject("$KV."+ClientsBucket+"."+filter))
	}
	if err != nil {
		return contracts.Errorf(contracts.CodeUnavailable, "client reports: remove %s: %v", filter, err)
	}
	return nil
}

// dropVersionReports removes every client's report on pkg@version.
func (s *Service) dropVersionReports(ctx context.Context, pkg, version string) error {
	return s.purgeReports(ctx, "*."+versionKey(pkg, version))
}

// dropClientReports removes every report of client.
func (s *Service) dropClientReports(ctx context.Context, client string) error {
	return s.purgeReports(ctx, keyToken(client)+".>")
}

// PruneReports removes the reports of versions not installed (their
// deletion was interrupted, or they were kept from before reports were
// checked) and returns how many versions' reports it removed.
func (s *Service) PruneReports(ctx context.Context) (int, error) {
	if err := s.syncModel(ctx, s.packagesKV, PackagesBucket); err != nil {
		return 0, err
	}
	lister, err := s.clientsKV.ListKeys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return 0, nil
	}
	if err != nil {
		return 0, contracts.Errorf(contracts.CodeUnavailable, "client reports: %v", err)
	}
	gone := map[string][2]string{} // version key -> package, version
	for k := range lister.Keys() {
		_, vk, ok := strings.Cut(k, ".")
		if !ok {
			continue
		}
		pkg, vt, ok := strings.Cut(vk, ".")
		if !ok {
			continue
		}
		version, err := unkeyToken(vt)
		if err != nil {
			continue
		}
		if _, installed := s.model.version(pkg, version); !installed {
			gone[vk] = [2]string{pkg, version}
		}
	}
	n := 0
	for _, pv := range gone {
		// Read again from the bucket just before: a version made since
		// the keys were listed keeps its reports.
		if _, err := s.packagesKV.Get(ctx, versionKey(pv[0], pv[1])); !errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err := s.dropVersionReports(ctx, pv[0], pv[1]); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
