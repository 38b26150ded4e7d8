package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"time"

	"github.com/stewardhq/steward/contracts"
)

// stager writes one package version into its staging directory,
// <content>/.staging/<package>@<version>, and installs it by renaming that
// directory to <content>/<package>/<version>: the installed directory
// appears only complete.
//
// Every write goes through an os.Root of the staging directory (no name
// may leave it, whatever links lie inside), files are opened with
// O_NOFOLLOW, parent directories are made one element at a time and must be
// directories, not links, and the package's own links are made last, after
// every file is written and verified. Staging resumes: a chunk already
// staged whose hash matches is not fetched again, nor one that matches in
// the version's installed directory (a kill after the install's rename and
// before the outcome was recorded).
type stager struct {
	m          *contracts.Manifest
	key        string // package@version
	stagingDir string // <content>/.staging
	dir        string // <content>/.staging/<package>@<version>
	dest       string // <content>/<package>/<version>

	// fetch gets a chunk of size bytes and verifies it; progress counts
	// the bytes staged.
	fetch    func(ctx context.Context, hash string, size int64) ([]byte, error)
	progress func(n int64)

	have map[string]chunkAt // chunks staged and verified, for files that share them
	// installed is the version's installed directory while it is staged
	// again (an outcome lost to a kill after the install's rename): its
	// chunks that still match are copied, not fetched. Nil when there is
	// none.
	installed *os.Root
}

// chunkAt is where a verified chunk lies in the staging directory.
type chunkAt struct {
	path      string
	off, size int64
}

func newStager(contentDir string, m *contracts.Manifest) (*stager, error) {
	key := contracts.PackageKey(m.Package, m.Version)
	rel := filepath.Join(m.Package, m.Version)
	if !filepath.IsLocal(key) || !filepath.IsLocal(rel) || filepath.Base(key) != key || filepath.Dir(rel) != m.Package {
		return nil, fmt.Errorf("%s does not name a directory inside %s", key, contentDir)
	}
	staging := filepath.Join(contentDir, stagingDirName)
	return &stager{
		m: m, key: key, stagingDir: staging, dir: filepath.Join(staging, key), dest: filepath.Join(contentDir, rel),
		fetch:    func(context.Context, string, int64) ([]byte, error) { return nil, errors.New("no chunk source") },
		progress: func(int64) {},
		have:     map[string]chunkAt{},
	}, nil
}

// staged is how many bytes of the version's files are already staged.
func (s *stager) staged() int64 {
	root, err := os.OpenRoot(s.dir)
	if err != nil {
		return 0
	}
	defer root.Close()
	var n int64
	for _, f := range s.m.Files {
		if fi, err := root.Lstat(f.Path); err == nil && fi.Mode().IsRegular() {
			n += min(fi.Size(), f.Size)
		}
	}
	return n
}

// stage makes the staging directory hold exactly the version: stray names
// go, every file is written (resuming) and verified whole, its mode set,
// the links made, and the directories synced.
func (s *stager) stage(ctx context.Context) error {
	if err := s.prepare(); err != nil {
		return err
	}
	root, err := os.OpenRoot(s.dir)
	if err != nil {
		return fmt.Errorf("staging directory: %w", err)
	}
	defer root.Close()
	if err := s.clean(root); err != nil {
		return err
	}
	if fi, err := os.Lstat(s.dest); err == nil && fi.IsDir() {
		if s.installed, err = os.OpenRoot(s.dest); err == nil {
			defer func() { s.installed.Close(); s.installed = nil }()
		}
	}
	for _, f := range s.m.Files {
		if err := s.writeFile(ctx, root, f); err != nil {
			return err
		}
	}
	for _, l := range s.m.Links {
		if err := s.link(root, l); err != nil {
			return err
		}
	}
	return syncDirs(root)
}

// prepare makes the content, staging and version staging directories; the
// last two must be directories, not links.
func (s *stager) prepare() error {
	content := filepath.Dir(s.stagingDir)
	if err := os.MkdirAll(content, 0o755); err != nil {
		return fmt.Errorf("content directory: %w", err)
	}
	// The staging directory is private while versions are staged in it;
	// a version's own directory gets the mode it is installed with.
	if err := mkdirReal(s.stagingDir, 0o700); err != nil {
		return err
	}
	return mkdirReal(s.dir, 0o755)
}

// mkdirReal makes dir (its parent exists) unless it is there, and checks
// that it is a directory and not a link.
func mkdirReal(dir string, perm fs.FileMode) error {
	if err := os.Mkdir(dir, perm); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory (%s)", dir, fi.Mode().Type())
	}
	return nil
}

// clean removes from the staging directory whatever the manifest does not
// have there: links (made again last), files and directories of no path of
// the version, anything that is neither file nor directory.
func (s *stager) clean(root *os.Root) error {
	files, dirs := map[string]bool{}, map[string]bool{}
	parents := func(p string) {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for _, f := range s.m.Files {
		files[f.Path] = true
		parents(f.Path)
	}
	for _, l := range s.m.Links {
		parents(l.Path)
	}
	var stray []string
	err := fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case p == ".":
		case d.Type()&fs.ModeSymlink != 0:
			stray = append(stray, p)
		case d.IsDir():
			if !dirs[p] {
				stray = append(stray, p)
				return fs.SkipDir
			}
		case d.Type().IsRegular():
			if !files[p] {
				stray = append(stray, p)
			}
		default:
			stray = append(stray, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("staging directory: %w", err)
	}
	for _, p := range stray {
		if err := root.RemoveAll(p); err != nil {
			return fmt.Errorf("staging directory: %w", err)
		}
	}
	return nil
}

// mkdirs makes the directory dir inside root one element at a time; each
// must be a directory, not a link or a file.
func mkdirs(root *os.Root, dir string) error {
	if dir == "." {
		return nil
	}
	if err := mkdirs(root, path.Dir(dir)); err != nil {
		return err
	}
	fi, err := root.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := root.Mkdir(dir, 0o755); err != nil {
			return err
		}
		fi, err = root.Lstat(dir)
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%q is not a directory (%s)", dir, fi.Mode().Type())
	}
	return nil
}

// openStaged opens (creating) a staged file for writing without following
// a link in its place. A file an earlier attempt already made read-only
// gets its owner's write permission back first.
func openStaged(root *os.Root, p string) (*os.File, error) {
	const flags = os.O_RDWR | os.O_CREATE | oNoFollow
	fh, err := root.OpenFile(p, flags, 0o600)
	if errors.Is(err, fs.ErrPermission) {
		if fi, lerr := root.Lstat(p); lerr == nil && fi.Mode().IsRegular() {
			if cerr := root.Chmod(p, 0o600); cerr == nil {
				fh, err = root.OpenFile(p, flags, 0o600)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	fi, err := fh.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		fh.Close()
		return nil, fmt.Errorf("%q is not a regular file", p)
	}
	return fh, nil
}

// writeFile stages one file: the chunks already there that verify stay,
// the others are fetched (or copied from another file of the version that
// has them); then the whole file must have the manifest's SHA-256, and it
// gets its mode.
func (s *stager) writeFile(ctx context.Context, root *os.Root, f contracts.ManifestFile) error {
	if err := mkdirs(root, path.Dir(f.Path)); err != nil {
		return fmt.Errorf("file %q: %w", f.Path, err)
	}
	fh, err := openStaged(root, f.Path)
	if err != nil {
		return fmt.Errorf("file %q: %w", f.Path, err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return fmt.Errorf("file %q: %w", f.Path, err)
	}
	have := fi.Size()
	if have > f.Size {
		if err := fh.Truncate(f.Size); err != nil {
			return fmt.Errorf("file %q: %w", f.Path, err)
		}
		have = f.Size
	}
	buf := make([]byte, contracts.ChunkSize)
	for i, c := range f.Chunks {
		off := int64(i) * contracts.ChunkSize
		n := min(int64(contracts.ChunkSize), f.Size-off)
		if off+n <= have {
			if _, err := fh.ReadAt(buf[:n], off); err == nil && contracts.ChunkHash(buf[:n]) == c {
				s.have[c] = chunkAt{f.Path, off, n}
				s.progress(n)
				continue
			}
		}
		data, err := s.chunkAt(ctx, root, c, chunkAt{f.Path, off, n})
		if err != nil {
			if isRetryable(err) {
				return err
			}
			return fmt.Errorf("file %q, chunk %d: %w", f.Path, i+1, err)
		}
		if _, err := fh.WriteAt(data, off); err != nil {
			return fmt.Errorf("file %q: %w", f.Path, err)
		}
		s.have[c] = chunkAt{f.Path, off, n}
		s.progress(n)
	}
	if err := fh.Sync(); err != nil {
		return fmt.Errorf("file %q: %w", f.Path, err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(fh, 0, f.Size)); err != nil {
		return fmt.Errorf("file %q: %w", f.Path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return fmt.Errorf("file %q: its chunks make a file of SHA-256 %s, the manifest says %s", f.Path, got, f.SHA256)
	}
	if err := fh.Chmod(fs.FileMode(f.Mode) & fs.ModePerm); err != nil {
		return fmt.Errorf("file %q: %w", f.Path, err)
	}
	return nil
}

// chunkAt is the verified chunk hash that lies at where in the version: a
// copy of one staged before in this version, or of the installed one in
// the same place, else fetched.
func (s *stager) chunkAt(ctx context.Context, root *os.Root, hash string, where chunkAt) ([]byte, error) {
	n := where.size
	if at, ok := s.have[hash]; ok && at.size == n {
		if b, err := readStaged(root, at); err == nil && contracts.ChunkHash(b) == hash {
			return b, nil
		}
	}
	if s.installed != nil {
		if b, err := readStaged(s.installed, where); err == nil && contracts.ChunkHash(b) == hash {
			return b, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, retryable{err}
	}
	return s.fetch(ctx, hash, n)
}

func readStaged(root *os.Root, at chunkAt) ([]byte, error) {
	fh, err := root.OpenFile(at.path, os.O_RDONLY|oNoFollow, 0)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b := make([]byte, at.size)
	if _, err := fh.ReadAt(b, at.off); err != nil {
		return nil, err
	}
	return b, nil
}

// link makes one of the version's links (its target checked by
// checkContentPaths).
func (s *stager) link(root *os.Root, l contracts.ManifestLink) error {
	if err := mkdirs(root, path.Dir(l.Path)); err != nil {
		return fmt.Errorf("link %q: %w", l.Path, err)
	}
	if err := root.Symlink(l.Target, l.Path); err != nil {
		return fmt.Errorf("link %q: %w", l.Path, err)
	}
	return nil
}

// syncDirs syncs every directory of the staging tree, so that the names in
// them are on disk before the rename that installs them.
func syncDirs(root *os.Root) error {
	return fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		dh, err := root.Open(p)
		if err != nil {
			return err
		}
		defer dh.Close()
		if err := syncDirHandle(dh); err != nil {
			return fmt.Errorf("sync %q: %w", p, err)
		}
		return nil
	})
}

// install renames the complete staging directory to the version's
// directory. A directory already there (a version whose content changed,
// or left by an attempt interrupted after its rename) is moved aside
// first and removed after.
func (s *stager) install() error {
	parent := filepath.Dir(s.dest)
	if err := mkdirReal(parent, 0o755); err != nil {
		return fmt.Errorf("install %s: %w", s.key, err)
	}
	var old string
	if _, err := os.Lstat(s.dest); err == nil {
		old = filepath.Join(s.stagingDir, ".old-"+s.key+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
		if err := os.Rename(s.dest, old); err != nil {
			return fmt.Errorf("install %s: move the old directory aside: %w", s.key, err)
		}
	}
	if err := os.Rename(s.dir, s.dest); err != nil {
		if old != "" {
			_ = os.Rename(old, s.dest)
		}
		return fmt.Errorf("install %s: %w", s.key, err)
	}
	// The version is installed; the renames are made durable where the
	// platform allows (a crash before undoes them at worst, and the next
	// sync fetches the version again).
	syncDir(parent)
	syncDir(s.stagingDir)
	if old != "" {
		_ = os.RemoveAll(old)
	}
	return nil
}

// discard removes the staging directory.
func (s *stager) discard() { _ = os.RemoveAll(s.dir) }
