package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/rpc"
)

// PackageSource is a directory read for a package: its manifest entries,
// and where each distinct chunk is, so it can be read again to upload.
type PackageSource struct {
	Dir    string
	Files  []contracts.ManifestFile
	Links  []contracts.ManifestLink
	Size   int64
	chunks map[string]chunkAt
	order  []string // distinct chunks, first use first
}

type chunkAt struct {
	file string // absolute path
	off  int64
	n    int
}

// Chunks is how many distinct chunks the source has.
func (s *PackageSource) Chunks() int { return len(s.order) }

// ScanPackage reads dir (a link to a directory is followed) into manifest
// entries: every regular file, split into chunks, and every symbolic link
// below it whose target stays inside dir.
// Anything else (a device, a socket, a link that escapes) is an error: a
// package holds what it says, nothing more.
func ScanPackage(dir string) (*PackageSource, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	// The root may be a link to the directory (links below it are
	// entries of the package, as they are).
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return nil, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	src := &PackageSource{Dir: abs, chunks: map[string]chunkAt{}}
	buf := make([]byte, contracts.ChunkSize)
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == abs {
			return nil
		}
		rel, err := filepath.Rel(abs, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		switch t := d.Type(); {
		case t.IsDir():
			return nil
		case t&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			target = filepath.ToSlash(target)
			if err := contracts.ValidLinkTarget(rel, target); err != nil {
				return fmt.Errorf("%s: %w", dir, err)
			}
			src.Links = append(src.Links, contracts.ManifestLink{Path: rel, Target: target})
			return nil
		case !t.IsRegular():
			return fmt.Errorf("%s is not a regular file, directory or link", p)
		}
		if err := contracts.ValidPackagePath(rel); err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		f, err := scanFile(p, rel, uint32(info.Mode().Perm()), buf, src)
		if err != nil {
			return err
		}
		src.Files = append(src.Files, f)
		src.Size += f.Size
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(src.Files) == 0 {
		return nil, fmt.Errorf("%s has no files", dir)
	}
	return src, nil
}

func scanFile(p, rel string, mode uint32, buf []byte, src *PackageSource) (contracts.ManifestFile, error) {
	f, err := os.Open(p)
	if err != nil {
		return contracts.ManifestFile{}, err
	}
	defer f.Close()
	whole := sha256.New()
	mf := contracts.ManifestFile{Path: rel, Mode: mode}
	for {
		n, err := io.ReadFull(f, buf)
		if n > 0 {
			whole.Write(buf[:n])
			h := contracts.ChunkHash(buf[:n])
			mf.Chunks = append(mf.Chunks, h)
			if _, ok := src.chunks[h]; !ok {
				src.chunks[h] = chunkAt{file: p, off: mf.Size, n: n}
				src.order = append(src.order, h)
			}
			mf.Size += int64(n)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return contracts.ManifestFile{}, fmt.Errorf("%s: %w", p, err)
		}
	}
	mf.SHA256 = hex.EncodeToString(whole.Sum(nil))
	return mf, nil
}

// Check refuses a source the site would refuse as version name@version
// for its number of files and links (contracts.MaxPackageFiles) or the
// size of its manifest (contracts.MaxManifestBytes), saying which and
// what to do: checked before the upload, nothing is uploaded in vain.
func (s *PackageSource) Check(name, version string) error {
	what := contracts.PackageKey(name, version)
	if n := len(s.Files) + len(s.Links); n > contracts.MaxPackageFiles {
		return fmt.Errorf("%s: %s has %d files and links, and a package holds at most %d: split it into several packages (or archive small files into one)",
			what, s.Dir, n, contracts.MaxPackageFiles)
	}
	req := contracts.PackageCreateRequest{Package: name, Version: version, Files: s.Files, Links: s.Links}
	if n := req.ManifestBytes(); n > contracts.MaxManifestBytes {
		chunks := 0
		for _, f := range s.Files {
			chunks += len(f.Chunks)
		}
		return fmt.Errorf("%s: the manifest of %s would be %d bytes, over the %d one manifest may hold (too many files and paths for one manifest: "+
			"%d files and links, %d chunk hashes): split it into several packages (or archive small files into one)",
			what, s.Dir, n, contracts.MaxManifestBytes, len(s.Files)+len(s.Links), chunks)
	}
	return nil
}

// PackageCreateTime is how much longer than an ordinary request the site
// may take to create a version of src: before it signs, it reads every
// file back from its library and checks its hash, about a second per 32
// MiB.
func PackageCreateTime(src *PackageSource) time.Duration {
	return time.Duration(src.Size>>25) * time.Second
}

// readChunk reads chunk h again and checks it did not change since the scan.
func (s *PackageSource) readChunk(h string) ([]byte, error) {
	at, ok := s.chunks[h]
	if !ok {
		return nil, fmt.Errorf("chunk %s is not in %s", h, s.Dir)
	}
	f, err := os.Open(at.file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, at.n)
	if _, err := f.ReadAt(b, at.off); err != nil {
		return nil, fmt.Errorf("%s: %w", at.file, err)
	}
	if contracts.ChunkHash(b) != h {
		return nil, fmt.Errorf("%s changed while the package was being made; run the command again", at.file)
	}
	return b, nil
}

// PackageProgress is told each chunk uploaded (bytes) and each chunk the
// site already had (skipped), so a progress bar can count both.
type PackageProgress interface {
	Uploaded(bytes int)
	Skipped(bytes int)
}

// PackageUpload sends the chunks of src the site lacks (asking in
// batches). A ctx without a deadline bounds each request by
// rpc.DefaultTimeout and the whole upload by nothing.
func (c *Client) PackageUpload(ctx context.Context, src *PackageSource, progress PackageProgress) (uploaded int, err error) {
	for batch := range slices.Chunk(src.order, contracts.MaxChunkQuery) {
		req := contracts.PackageChunksRequest{Header: contracts.NewHeader(contracts.TypePackageChunksRequest), Hashes: batch}
		var resp contracts.PackageChunksResponse
		if err := c.call(ctx, contracts.KindPackagesChunks, req, &resp); err != nil {
			return uploaded, err
		}
		missing := map[string]bool{}
		for _, h := range resp.Missing {
			missing[h] = true
		}
		for _, h := range batch {
			if !missing[h] {
				if progress != nil {
					progress.Skipped(src.chunks[h].n)
				}
				continue
			}
			data, err := src.readChunk(h)
			if err != nil {
				return uploaded, err
			}
			if err := c.PutChunk(ctx, h, data); err != nil {
				return uploaded, err
			}
			uploaded++
			if progress != nil {
				progress.Uploaded(len(data))
			}
		}
	}
	return uploaded, nil
}

// PutChunk stores one chunk in the site's content library.
func (c *Client) PutChunk(ctx context.Context, hash string, data []byte) error {
	subj, err := contracts.OpUp(c.site, c.operator, contracts.KindPackagesChunkPut)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(subj)
	msg.Header.Set(contracts.HeaderChunk, hash)
	msg.Data = data
	_, err = rpc.CallMsg(ctx, c.nc, msg)
	return err
}

// PackageCreate asks the site to sign and store a version of src, whose
// chunks it holds (PackageUpload first). A ctx without a deadline waits
// rpc.DefaultTimeout plus PackageCreateTime(src); a ctx with one should
// leave that much time (the CLI waits --timeout plus it).
func (c *Client) PackageCreate(ctx context.Context, name, version string, src *PackageSource) (contracts.PackageInfo, error) {
	if err := src.Check(name, version); err != nil {
		return contracts.PackageInfo{}, contracts.Errorf(contracts.CodeTooLarge, "%v", err)
	}
	req := contracts.PackageCreateRequest{
		Header: contracts.NewHeader(contracts.TypePackageCreateRequest), Package: name, Version: version,
		Files: src.Files, Links: src.Links,
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, rpc.DefaultTimeout+PackageCreateTime(src))
		defer cancel()
	}
	var resp contracts.PackageResponse
	if err := c.call(ctx, contracts.KindPackagesCreate, req, &resp); err != nil {
		return contracts.PackageInfo{}, err
	}
	if len(resp.Packages) != 1 {
		return contracts.PackageInfo{}, contracts.Errorf(contracts.CodeInternal, "the site answered create with %d versions", len(resp.Packages))
	}
	return resp.Packages[0], nil
}

// PackageList lists every version (of pkg when set). Never nil.
func (c *Client) PackageList(ctx context.Context, pkg string) ([]contracts.PackageInfo, error) {
	var resp contracts.PackageListResponse
	req := contracts.PackageListRequest{Header: contracts.NewHeader(contracts.TypePackageListRequest), Package: pkg}
	if err := c.call(ctx, contracts.KindPackagesList, req, &resp); err != nil {
		return nil, err
	}
	if resp.Packages == nil {
		resp.Packages = []contracts.PackageInfo{}
	}
	return resp.Packages, nil
}

func packageRequest(pkg, version string) contracts.PackageRequest {
	return contracts.PackageRequest{Header: contracts.NewHeader(contracts.TypePackageRequest), Package: pkg, Version: version}
}

// PackageShow returns one version (the newest when version is "").
func (c *Client) PackageShow(ctx context.Context, pkg, version string) (contracts.PackageShowResponse, error) {
	var resp contracts.PackageShowResponse
	err := c.call(ctx, contracts.KindPackagesShow, packageRequest(pkg, version), &resp)
	return resp, err
}

// PackageDelete deletes a version (every version when version is "").
func (c *Client) PackageDelete(ctx context.Context, pkg, version string) ([]contracts.PackageInfo, error) {
	var resp contracts.PackageResponse
	err := c.call(ctx, contracts.KindPackagesDelete, packageRequest(pkg, version), &resp)
	return resp.Packages, err
}

// PackageStatus returns where a version stands at each site and client.
func (c *Client) PackageStatus(ctx context.Context, pkg, version string) (contracts.PackageStatusResponse, error) {
	var resp contracts.PackageStatusResponse
	err := c.call(ctx, contracts.KindPackagesStatus, packageRequest(pkg, version), &resp)
	return resp, err
}

// PackageDistribute queues a version for sites.
func (c *Client) PackageDistribute(ctx context.Context, pkg, version string, sites []string) (contracts.PackageStatusResponse, error) {
	req := contracts.PackageDistributeRequest{Header: contracts.NewHeader(contracts.TypePackageDistributeRequest), Package: pkg, Version: version, Sites: sites}
	var resp contracts.PackageStatusResponse
	err := c.call(ctx, contracts.KindPackagesDistribute, req, &resp)
	return resp, err
}

// PackageCancel stops sending version (every version when "") of pkg to
// sites: the site deletes the jobs, whatever their state, and returns
// them as they stood. The sites need not be linked any more.
func (c *Client) PackageCancel(ctx context.Context, pkg, version string, sites []string) ([]contracts.PackageCancelled, error) {
	req := contracts.PackageCancelRequest{Header: contracts.NewHeader(contracts.TypePackageCancelRequest), Package: pkg, Version: version, Sites: sites}
	var resp contracts.PackageCancelResponse
	if err := c.call(ctx, contracts.KindPackagesCancel, req, &resp); err != nil {
		return nil, err
	}
	if resp.Cancelled == nil {
		resp.Cancelled = []contracts.PackageCancelled{}
	}
	return resp.Cancelled, nil
}

// PackageDeploy deploys (or, deploy false, undeploys) a version to a collection.
func (c *Client) PackageDeploy(ctx context.Context, pkg, version, collection string, deploy bool) (contracts.PackageDeployResponse, error) {
	req := contracts.PackageDeployRequest{Header: contracts.NewHeader(contracts.TypePackageDeployRequest), Package: pkg, Version: version, Collection: collection}
	kind := contracts.KindPackagesDeploy
	if !deploy {
		kind = contracts.KindPackagesUndeploy
	}
	var resp contracts.PackageDeployResponse
	err := c.call(ctx, kind, req, &resp)
	return resp, err
}

// RouteSet sets how the sender sends to a site.
func (c *Client) RouteSet(ctx context.Context, site string, rate int64, schedule string) ([]contracts.RouteInfo, error) {
	req := contracts.RouteSetRequest{Header: contracts.NewHeader(contracts.TypeRouteSetRequest), Site: site, Rate: rate, Schedule: schedule}
	var resp contracts.RouteListResponse
	err := c.call(ctx, contracts.KindRoutesSet, req, &resp)
	return resp.Routes, err
}

// RouteDelete returns the route to site to the default (unlimited, always
// open) and returns it.
func (c *Client) RouteDelete(ctx context.Context, site string) ([]contracts.RouteInfo, error) {
	req := contracts.RouteDeleteRequest{Header: contracts.NewHeader(contracts.TypeRouteDeleteRequest), Site: site}
	var resp contracts.RouteListResponse
	err := c.call(ctx, contracts.KindRoutesDelete, req, &resp)
	return resp.Routes, err
}

// RouteList lists the routes. Never nil.
func (c *Client) RouteList(ctx context.Context) ([]contracts.RouteInfo, error) {
	var resp contracts.RouteListResponse
	if err := c.call(ctx, contracts.KindRoutesList, contracts.RouteListRequest{Header: contracts.NewHeader(contracts.TypeRouteListRequest)}, &resp); err != nil {
		return nil, err
	}
	if resp.Routes == nil {
		resp.Routes = []contracts.RouteInfo{}
	}
	return resp.Routes, nil
}

// QuarantineList lists what peer sites sent that failed verification here.
func (c *Client) QuarantineList(ctx context.Context) ([]contracts.QuarantineInfo, error) {
	var resp contracts.QuarantineListResponse
	if err := c.call(ctx, contracts.KindQuarantineList, contracts.QuarantineListRequest{Header: contracts.NewHeader(contracts.TypeQuarantineListRequest)}, &resp); err != nil {
		return nil, err
	}
	if resp.Entries == nil {
		resp.Entries = []contracts.QuarantineInfo{}
	}
	return resp.Entries, nil
}

// QuarantineShow returns one quarantine entry with the bytes kept of it.
func (c *Client) QuarantineShow(ctx context.Context, id string) (*contracts.QuarantineShowResponse, error) {
	var resp contracts.QuarantineShowResponse
	if err := c.call(ctx, contracts.KindQuarantineShow, contracts.QuarantineShowRequest{Header: contracts.NewHeader(contracts.TypeQuarantineShowRequest), Entry: id}, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// QuarantineDelete forgets one entry and returns what is left.
func (c *Client) QuarantineDelete(ctx context.Context, id string) ([]contracts.QuarantineInfo, error) {
	var resp contracts.QuarantineListResponse
	err := c.call(ctx, contracts.KindQuarantineDelete, contracts.QuarantineDeleteRequest{Header: contracts.NewHeader(contracts.TypeQuarantineDeleteRequest), Entry: id}, &resp)
	return resp.Entries, err
}
