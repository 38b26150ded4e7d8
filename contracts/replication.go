package contracts

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strings"
	"time"
	"unicode"
)

// Content replication: packages are files split into chunks addressed by
// SHA-256 and stored once; a package version is a Manifest signed by the
// site that sends it. Sites talk to each other on the "site" subject space
// (SiteSubject) over the leaf connection that links them; agents fetch
// content from their own site.

// ChunkSize is the size of every chunk of a file but its last.
const ChunkSize = 512 << 10

// Replication limits. A manifest over them is refused before anything else
// is done with it (a size bomb costs nothing). MaxManifestBytes is reached
// first for most packages: at about 3,500 small files (each file's path,
// hash and chunk list), or about 5 GiB of content, well before
// MaxPackageFiles; `packages create` checks both before uploading.
const (
	MaxPackageFiles    = 10_000
	MaxPackageBytes    = int64(64) << 30 // 64 GiB
	MaxManifestBytes   = 720 << 10       // in base64 (4/3) with its envelope, a signed manifest fits one 1 MiB NATS message
	MaxPackagePathLen  = 1024
	MaxPackageNameLen  = 64
	MaxPackageVersions = 256
)

// Message type strings of replication.
const (
	TypeManifest              = "steward.v1.manifest"
	TypeSignedManifest        = "steward.v1.signed_manifest"
	TypeReplicationOffer      = "steward.v1.replication_offer"
	TypeReplicationOfferReply = "steward.v1.replication_offer_reply"
	TypeReplicationCommit     = "steward.v1.replication_commit"
	TypeReplicationCommitAck  = "steward.v1.replication_commit_ack"
	TypeContentList           = "steward.v1.content_list"
	TypeContentListRequest    = "steward.v1.content_list_request"
	TypeContentListResponse   = "steward.v1.content_list_response"
	TypeContentManifestReq    = "steward.v1.content_manifest_request"
	TypeContentManifestResp   = "steward.v1.content_manifest_response"
	TypeContentChunkRequest   = "steward.v1.content_chunk_request"
	TypeContentReport         = "steward.v1.content_report"
	TypeContentReportAck      = "steward.v1.content_report_ack"
)

// Subject kinds of replication. Site-to-site kinds travel on SiteSubject;
// agent kinds on AgentUp/AgentDown.
const (
	// sender -> despooler (steward.<dest>.site.<sender>.<kind>)
	KindReplOffer  = "repl.offer"  // a SignedManifest: the despooler answers which chunks it lacks
	KindReplChunk  = "repl.chunk"  // one chunk, raw bytes; headers name package, version and hash
	KindReplCommit = "repl.commit" // every chunk sent: verify and install the version atomically

	// agent <-> site
	KindContentList     = "content.list"     // agent asks which package versions it should hold
	KindContentManifest = "content.manifest" // agent asks for one version's signed manifest
	KindContentChunk    = "content.chunk"    // agent asks for one chunk (raw bytes answer)
	KindContentReport   = "content.report"   // agent says what it holds or why it failed
	KindContentChanged  = "content.changed"  // site -> agent: fetch content.list again
)

// Headers of chunk messages (repl.chunk requests, content.chunk answers).
const (
	HeaderPackage = "Steward-Package"
	HeaderVersion = "Steward-Version"
	HeaderChunk   = "Steward-Chunk" // hex SHA-256 of the body
)

// SiteSubject is a subject on which site from speaks to site dest:
// "steward.<dest>.site.<from>.<kind>". The leaf connection between two
// sites lets a site publish only with itself as from, so the receiving
// service takes the sending site from the subject, never from the payload.
func SiteSubject(dest, from, kind string) (string, error) {
	return join(append([]string{Root, dest, "site", from}, kindTokens(kind)...)...)
}

// SiteSubjectAll subscribes to kind from every peer site of dest.
func SiteSubjectAll(dest, kind string) (string, error) {
	if err := validAll(append([]string{dest}, kindTokens(kind)...)); err != nil {
		return "", err
	}
	return joinWild(append([]string{Root, dest, "site", "*"}, kindTokens(kind)...)...), nil
}

// SiteSpace is everything site from may say to site dest:
// "steward.<dest>.site.<from>.>". Used in leaf connection permissions.
func SiteSpace(dest, from string) (string, error) {
	s, err := join(Root, dest, "site", from)
	if err != nil {
		return "", err
	}
	return s + ".>", nil
}

// SiteInbox is the reply-inbox prefix of the services of site when they ask
// another site ("steward.<site>.inbox.site"): the leaf connection carries
// replies only to these inboxes. It lies in the site's own space, not in
// _INBOX, so that a child can refuse to send any _INBOX reply up its link
// (its operators' and services' answers) and still answer its parent.
func SiteInbox(site string) (string, error) { return join(Root, site, siteInboxKind, "site") }

// siteInboxKind is the token after the site code that makes a subject a
// site's inbox (steward.<site>.inbox.>).
const siteInboxKind = "inbox"

// IsSiteInbox reports whether subject lies in any site's inbox.
func IsSiteInbox(subject string) bool {
	t := strings.SplitN(subject, ".", 4)
	return len(t) >= 3 && t[0] == Root && t[2] == siteInboxKind
}

// ChunkHash is the hex SHA-256 of a chunk.
func ChunkHash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// ValidHash checks a hex SHA-256.
func ValidHash(h string) error {
	if len(h) != 64 {
		return fmt.Errorf("hash %q: want 64 hex digits", h)
	}
	for _, r := range h {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return fmt.Errorf("hash %q: want lowercase hex", h)
		}
	}
	return nil
}

// ValidPackageName checks a package name: 1 to 64 letters, digits, '-',
// '_', starting with a letter or digit.
func ValidPackageName(n string) error {
	if len(n) == 0 || len(n) > MaxPackageNameLen {
		return fmt.Errorf("package name %q must be 1 to %d characters", n, MaxPackageNameLen)
	}
	for i, r := range n {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || (i > 0 && (r == '-' || r == '_'))
		if !ok {
			return fmt.Errorf("package name %q: only letters, digits, '-' and '_' (not first)", n)
		}
	}
	return nil
}

// ValidPackageVersion checks a version: 1 to 64 letters, digits, '-', '_'
// and '.' (not first or last), so "1.0" and "2026-11-21" are versions.
func ValidPackageVersion(v string) error {
	if len(v) == 0 || len(v) > 64 {
		return fmt.Errorf("version %q must be 1 to 64 characters", v)
	}
	if v[0] == '.' || v[len(v)-1] == '.' || strings.Contains(v, "..") {
		return fmt.Errorf("version %q: '.' may not be first, last or doubled", v)
	}
	for _, r := range v {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok {
			return fmt.Errorf("version %q: only letters, digits, '.', '-' and '_'", v)
		}
	}
	return nil
}

// PackageKey is "<package>@<version>", how logs, keys and messages name one
// package version.
func PackageKey(pkg, version string) string { return pkg + "@" + version }

// ValidPackagePath checks a file path inside a package: relative,
// slash-separated, clean, no "." or ".." element, no control characters,
// no backslash (a Windows separator would escape on Windows).
func ValidPackagePath(p string) error {
	if p == "" || len(p) > MaxPackagePathLen {
		return fmt.Errorf("path %q must be 1 to %d bytes", p, MaxPackagePathLen)
	}
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("path %q is absolute", p)
	}
	if strings.ContainsRune(p, '\\') {
		return fmt.Errorf("path %q contains a backslash", p)
	}
	for _, r := range p {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("path %q contains a control or invalid character", p)
		}
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return fmt.Errorf("path %q escapes the package", p)
		}
		if el == "" || el == "." {
			return fmt.Errorf("path %q is not clean", p)
		}
	}
	if path.Clean(p) != p {
		return fmt.Errorf("path %q is not clean", p)
	}
	return nil
}

// Manifest is one package version: its files and their chunks. It is
// signed by the site that sends it (SignedManifest); Site is the site that
// created it.
type Manifest struct {
	Header
	Site      string         `json:"site"`
	Package   string         `json:"package"`
	Version   string         `json:"version"`
	Created   time.Time      `json:"created"`
	CreatedBy string         `json:"createdBy,omitempty"`
	ChunkSize int            `json:"chunkSize"`
	Size      int64          `json:"size"` // sum of the files' sizes
	Files     []ManifestFile `json:"files"`
	Links     []ManifestLink `json:"links,omitempty"`
}

// ManifestFile is one file of a package.
type ManifestFile struct {
	Path   string   `json:"path"`
	Mode   uint32   `json:"mode"` // permission bits only (0o777)
	Size   int64    `json:"size"`
	SHA256 string   `json:"sha256"`           // of the whole file
	Chunks []string `json:"chunks,omitempty"` // hex SHA-256 of each chunk, in order (none for an empty file)
}

// ManifestLink is a symbolic link of a package, whose target must stay
// inside the package (ValidLinkTarget).
type ManifestLink struct {
	Path   string `json:"path"`
	Target string `json:"target"`
}

// ChunkSizes is the size of each chunk the manifest names: every chunk of
// a file is ChunkSize but its last. A chunk is its hash's content, so
// wherever it is used it has one size; an error says where it has two.
func (m *Manifest) ChunkSizes() (map[string]int, error) {
	sizes := map[string]int{}
	for _, f := range m.Files {
		for j, c := range f.Chunks {
			n := int64(ChunkSize)
			if j == len(f.Chunks)-1 {
				n = f.Size - int64(j)*ChunkSize
			}
			if old, ok := sizes[c]; ok && int64(old) != n {
				return nil, fmt.Errorf("file %q: chunk %s is %d bytes here and %d elsewhere", f.Path, c, n, old)
			}
			sizes[c] = int(n)
		}
	}
	return sizes, nil
}

// Validate checks everything a receiver must before it trusts a manifest's
// shape: names, limits (a size bomb), safe paths and link targets, no
// duplicates and no file under another file, chunk counts that match sizes.
func (m *Manifest) Validate() error {
	if err := ValidName(m.Site); err != nil {
		return fmt.Errorf("site: %w", err)
	}
	if err := ValidPackageName(m.Package); err != nil {
		return err
	}
	if err := ValidPackageVersion(m.Version); err != nil {
		return err
	}
	if m.ChunkSize != ChunkSize {
		return fmt.Errorf("chunk size %d: want %d", m.ChunkSize, ChunkSize)
	}
	if len(m.Files) == 0 {
		return fmt.Errorf("a package needs at least one file")
	}
	if len(m.Files)+len(m.Links) > MaxPackageFiles {
		return fmt.Errorf("%d files and links: at most %d", len(m.Files)+len(m.Links), MaxPackageFiles)
	}
	if m.Size < 0 || m.Size > MaxPackageBytes {
		return fmt.Errorf("size %d: at most %d bytes", m.Size, MaxPackageBytes)
	}
	seen := make(map[string]bool, len(m.Files))
	var total int64
	for i := range m.Files {
		f := &m.Files[i]
		if err := ValidPackagePath(f.Path); err != nil {
			return fmt.Errorf("file %d: %w", i, err)
		}
		if seen[f.Path] {
			return fmt.Errorf("path %q appears twice", f.Path)
		}
		seen[f.Path] = true
		if f.Mode&^0o777 != 0 {
			return fmt.Errorf("file %q: mode %o has bits besides permissions", f.Path, f.Mode)
		}
		if f.Size < 0 || f.Size > MaxPackageBytes {
			return fmt.Errorf("file %q: size %d out of range", f.Path, f.Size)
		}
		total += f.Size
		if total > MaxPackageBytes {
			return fmt.Errorf("files add up to more than %d bytes", MaxPackageBytes)
		}
		if err := ValidHash(f.SHA256); err != nil {
			return fmt.Errorf("file %q: %w", f.Path, err)
		}
		want := (f.Size + ChunkSize - 1) / ChunkSize
		if int64(len(f.Chunks)) != want {
			return fmt.Errorf("file %q: %d chunks for %d bytes, want %d", f.Path, len(f.Chunks), f.Size, want)
		}
		for _, c := range f.Chunks {
			if err := ValidHash(c); err != nil {
				return fmt.Errorf("file %q: chunk: %w", f.Path, err)
			}
		}
	}
	if total != m.Size {
		return fmt.Errorf("size %d, but the files add up to %d", m.Size, total)
	}
	if _, err := m.ChunkSizes(); err != nil {
		return err
	}
	for i, l := range m.Links {
		if err := ValidPackagePath(l.Path); err != nil {
			return fmt.Errorf("link %d: %w", i, err)
		}
		if seen[l.Path] {
			return fmt.Errorf("path %q appears twice", l.Path)
		}
		seen[l.Path] = true
		if err := ValidLinkTarget(l.Path, l.Target); err != nil {
			return err
		}
	}
	// Paths are compared as a case-insensitive file system (Windows,
	// macOS) sees them: two paths that differ only in case are one file.
	folded := make(map[string]string, len(seen))
	for p := range seen {
		f := strings.ToLower(p)
		if other, ok := folded[f]; ok {
			return fmt.Errorf("paths %q and %q differ only in case", min(p, other), max(p, other))
		}
		folded[f] = p
	}
	// No file or link may stand where another's directory is ("a" and
	// "a/b"): writing "a/b" would follow the link "a".
	for f, p := range folded {
		for d := path.Dir(f); d != "."; d = path.Dir(d) {
			if other, ok := folded[d]; ok {
				return fmt.Errorf("%q is inside file or link %q", p, other)
			}
		}
	}
	// A link's target may not pass through another link: the system
	// resolves that link first, so "x/l/.." is not where it reads when
	// x/l is itself a link (x/l -> ".." and y -> "x/l/../.." climb out).
	links := make(map[string]bool, len(m.Links))
	for _, l := range m.Links {
		links[strings.ToLower(l.Path)] = true
	}
	for _, l := range m.Links {
		if via := linkThroughLink(l.Path, l.Target, links); via != "" {
			return fmt.Errorf("link %q -> %q passes through link %q", l.Path, l.Target, via)
		}
	}
	return nil
}

// linkThroughLink returns the first link (of links, lowercased paths)
// that resolving target from the link at p walks through and then beyond,
// or "".
func linkThroughLink(p, target string, links map[string]bool) string {
	var stack []string
	if d := path.Dir(p); d != "." {
		stack = strings.Split(strings.ToLower(d), "/")
	}
	els := strings.Split(strings.ToLower(target), "/")
	for i, el := range els {
		switch el {
		case "", ".":
			continue
		case "..":
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		stack = append(stack, el)
		last := true
		for _, rest := range els[i+1:] {
			if rest != "" && rest != "." {
				last = false
				break
			}
		}
		if cur := strings.Join(stack, "/"); !last && links[cur] {
			return cur
		}
	}
	return ""
}

// ValidLinkTarget checks that the symbolic link at p pointing to target
// stays inside the package: relative, and never climbing above the root.
func ValidLinkTarget(p, target string) error {
	if target == "" || len(target) > MaxPackagePathLen {
		return fmt.Errorf("link %q: target must be 1 to %d bytes", p, MaxPackagePathLen)
	}
	if strings.HasPrefix(target, "/") || strings.ContainsRune(target, '\\') {
		return fmt.Errorf("link %q -> %q escapes the package", p, target)
	}
	for _, r := range target {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return fmt.Errorf("link %q: target %q contains a control or invalid character", p, target)
		}
	}
	depth := strings.Count(p, "/") // directories the link sits in
	for _, el := range strings.Split(target, "/") {
		switch el {
		case "..":
			depth--
			if depth < 0 {
				return fmt.Errorf("link %q -> %q escapes the package", p, target)
			}
		case "", ".":
		default:
			depth++
		}
	}
	return nil
}

// Chunks lists every distinct chunk of the manifest, in first-use order.
func (m *Manifest) Chunks() []string {
	seen := map[string]bool{}
	var out []string
	for _, f := range m.Files {
		for _, c := range f.Chunks {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out
}

// SignedManifest is a manifest's JSON and the ed25519 signature of the site
// that sends it over ManifestSigningInput. The receiver verifies it with the
// key it pinned for that site, and checks Key is that key.
type SignedManifest struct {
	Header
	Manifest  []byte `json:"manifest"`
	Signature []byte `json:"signature"`
	Key       string `json:"key"`
}

// ManifestSigningInput is what a site signs for a manifest.
func ManifestSigningInput(body []byte) []byte { return signingInput("steward-manifest-v1\n", body) }

// Digest is the hex SHA-256 of the manifest's JSON: the version's identity
// in assignments and status.
func (s *SignedManifest) Digest() string { return ChunkHash(s.Manifest) }

// ReplicationOffer is a sender offering a package version to a despooler.
type ReplicationOffer struct {
	Header
	Manifest SignedManifest `json:"manifest"`
}

// ReplicationOfferReply says which chunks the despooler still lacks.
type ReplicationOfferReply struct {
	Header
	Installed bool     `json:"installed,omitempty"` // the version is already installed
	Missing   []string `json:"missing,omitempty"`
}

// ReplicationCommit asks the despooler to install a version once every
// chunk has been sent.
type ReplicationCommit struct {
	Header
	Package string `json:"package"`
	Version string `json:"version"`
	Digest  string `json:"digest"` // SignedManifest.Digest of the offer
}

// ReplicationCommitAck says the version is installed, with the digest the
// despooler verified.
type ReplicationCommitAck struct {
	Header
	Digest string `json:"digest"`
	Bytes  int64  `json:"bytes"`
}

// ContentAssignment is one package version a client should hold.
type ContentAssignment struct {
	Package string `json:"package"`
	Version string `json:"version"`
	Digest  string `json:"digest"` // SignedManifest.Digest
	Size    int64  `json:"size"`
}

// ContentList is what a client should hold, signed by its site's key
// (ContentListSigningInput): the agent trusts a manifest because its digest
// is in a list its pinned site signed.
type ContentList struct {
	Header
	Site     string              `json:"site"`
	Client   string              `json:"client"`
	Issued   time.Time           `json:"issued"`
	Expires  time.Time           `json:"expires"`
	Packages []ContentAssignment `json:"packages"`
}

// ContentListSigningInput is what a site signs for a content list.
func ContentListSigningInput(body []byte) []byte {
	return signingInput("steward-content-list-v1\n", body)
}

// ContentListRequest is an agent asking for its content list.
type ContentListRequest struct {
	Header
}

// ContentListResponse carries the signed list: List is the JSON of a
// ContentList, signed with Signature by Key.
type ContentListResponse struct {
	Header
	List      []byte `json:"list"`
	Signature []byte `json:"signature"`
	Key       string `json:"key"`
}

// ContentManifestRequest asks for a version's signed manifest.
type ContentManifestRequest struct {
	Header
	Package string `json:"package"`
	Version string `json:"version"`
}

// ContentManifestResponse carries it.
type ContentManifestResponse struct {
	Header
	Manifest SignedManifest `json:"manifest"`
}

// ContentChunkRequest asks for one chunk of a version the client may read.
// The answer's body is the chunk's bytes, with HeaderChunk.
type ContentChunkRequest struct {
	Header
	Package string `json:"package"`
	Version string `json:"version"`
	Hash    string `json:"hash"`
}

// Content states of a version on a site or a client.
const (
	ContentPending   = "pending"
	ContentSending   = "sending"
	ContentInstalled = "installed"
	ContentFailed    = "failed"
	ContentUnknown   = "unknown"
)

// ContentReport is an agent saying what became of one assignment.
type ContentReport struct {
	Header
	Package string `json:"package"`
	Version string `json:"version"`
	Digest  string `json:"digest"`
	State   string `json:"state"` // installed | failed
	Bytes   int64  `json:"bytes,omitempty"`
	Error   string `json:"error,omitempty"`
}

// ContentReportAck acknowledges a report.
type ContentReportAck struct {
	Header
}
