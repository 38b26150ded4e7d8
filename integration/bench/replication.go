package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
)

// Replication benchmark sizes: a package of replFiles files adding up to
// replBytes, and a second version with replChanged of its files new.
const (
	replBytes   = 512 << 20
	replFiles   = 64
	replChanged = replFiles / 10 // 10% of the content changes
)

// replication replicates a 512 MiB package from a parent site to a child
// site (two `steward serve` processes linked by a leaf connection), with
// every signature and hash verified at the child, and compares the rate
// with a raw NATS chunk relay (request/reply of the same chunks, nothing
// stored or verified) and loopback TCP in the same run. Then it makes a
// version sharing 90% of its chunks and counts the bytes the second
// distribution moves.
func (e *Env) replication(ctx context.Context) (Result, error) {
	dir := filepath.Join(e.Dir, "replication")
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	e.Log("replication: writing a %d MiB package in %d files", replBytes>>20, replFiles)
	rng := rand.NewChaCha8([32]byte{1})
	for i := range replFiles {
		if err := writeRandom(filepath.Join(src, fmt.Sprintf("f%02d.bin", i)), replBytes/replFiles, rng); err != nil {
			return Result{}, err
		}
	}

	leaf, err := freeAddr()
	if err != nil {
		return Result{}, err
	}
	pdebug, paddr, err := e.debugArgs()
	if err != nil {
		return Result{}, err
	}
	// Both sites on one machine, as on one LAN: the link uncompressed
	// (auto would frame the data in S2 for nothing under 10 ms of round
	// trip: 102 against 130 MB/s in the same hour, BENCHMARKS.md).
	parent, err := StartSite(ctx, e.Steward, filepath.Join(dir, "parent"), append([]string{"--site", "PAR", "--leaf-listen", leaf, "--link-compression", "off"}, pdebug...)...)
	if err != nil {
		return Result{}, fmt.Errorf("replication: parent: %w", err)
	}
	defer parent.Stop()
	parent.DebugAddr = paddr
	op, err := parent.Operator(ctx)
	if err != nil {
		return Result{}, err
	}
	defer op.Close()
	tok, _, err := op.SitesTokenCreate(ctx, time.Hour, "CHD", "benchmark")
	if err != nil {
		return Result{}, fmt.Errorf("replication: site token: %w", err)
	}
	cdebug, caddr, err := e.debugArgs()
	if err != nil {
		return Result{}, err
	}
	child, err := StartSite(ctx, e.Steward, filepath.Join(dir, "child"), append([]string{"--site", "CHD", "--parent", "nats://" + leaf, "--parent-token", tok, "--link-compression", "off"}, cdebug...)...)
	if err != nil {
		return Result{}, fmt.Errorf("replication: child: %w", err)
	}
	defer child.Stop()
	child.DebugAddr = caddr
	if err := waitFor(ctx, 60*time.Second, func() bool {
		peers, err := op.SitesList(ctx)
		return err == nil && len(peers) == 1 && peers[0].Site == "CHD" && peers[0].SigningKey != "" && peers[0].Connected
	}); err != nil {
		return Result{}, fmt.Errorf("replication: the child did not link: %w", err)
	}

	create := func(version string) (contracts.PackageInfo, error) {
		s, err := client.ScanPackage(src)
		if err != nil {
			return contracts.PackageInfo{}, err
		}
		if _, err := op.PackageUpload(ctx, s, nil); err != nil {
			return contracts.PackageInfo{}, err
		}
		return op.PackageCreate(ctx, "bench", version, s)
	}
	distribute := func(version string) (contracts.PackageSiteStatus, time.Duration, error) {
		start := time.Now()
		if _, err := op.PackageDistribute(ctx, "bench", version, []string{"CHD"}); err != nil {
			return contracts.PackageSiteStatus{}, 0, err
		}
		var last contracts.PackageSiteStatus
		// Asked ten times a second: each answer lists the version's client
		// reports, work taken from the transfer it times.
		err := waitEvery(ctx, 20*time.Minute, 100*time.Millisecond, func() bool {
			st, err := op.PackageStatus(ctx, "bench", version)
			if err != nil || len(st.Sites) != 1 {
				return false
			}
			last = st.Sites[0]
			return last.State == contracts.ContentInstalled || last.State == contracts.ContentFailed
		})
		if err == nil && last.State != contracts.ContentInstalled {
			err = fmt.Errorf("distribution failed: %s", last.Error)
		}
		return last, time.Since(start), err
	}

	e.Log("replication: creating version 1 at the parent")
	v1, err := create("1")
	if err != nil {
		return Result{}, fmt.Errorf("replication: create: %w", err)
	}
	e.Log("replication: distributing %d MiB to the child", v1.Size>>20)
	stopProfile := e.profileSites(ctx, "replication", 5*time.Second, map[string]*Site{"parent": parent, "child": child})
	st1, took, err := distribute("1")
	stopProfile()
	if err != nil {
		return Result{}, fmt.Errorf("replication: %w", err)
	}
	repl := float64(v1.Size) / 1e6 / took.Seconds()
	if st1.Verified != v1.Digest {
		return Result{}, fmt.Errorf("replication: the child verified digest %q, want %q", st1.Verified, v1.Digest)
	}

	for i := range replChanged {
		if err := writeRandom(filepath.Join(src, fmt.Sprintf("f%02d.bin", i)), replBytes/replFiles, rng); err != nil {
			return Result{}, err
		}
	}
	v2, err := create("2")
	if err != nil {
		return Result{}, fmt.Errorf("replication: create v2: %w", err)
	}
	st2, _, err := distribute("2")
	if err != nil {
		return Result{}, fmt.Errorf("replication v2: %w", err)
	}
	moved := float64(st2.Bytes) / float64(v2.Size)

	url, _, stop, err := e.rawServer(ctx, dir)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	raw, err := rawChunkRelay(e, url, replBytes)
	if err != nil {
		return Result{}, fmt.Errorf("replication raw relay: %w", err)
	}
	tcp, err := loopbackTCP(replBytes)
	if err != nil {
		return Result{}, err
	}
	disk, err := syncedWrites(dir, replBytes)
	if err != nil {
		return Result{}, err
	}
	met := repl >= 0.5*raw && moved <= 0.15
	note := fmt.Sprintf("%d MiB parent to child over a leaf connection (compression off, as on a LAN), signature and every chunk hash verified, stored with fsync: %.1f MB/s; "+
		"raw NATS chunk relay (request/reply of %d KiB chunks, %d in flight, nothing stored) %.1f MB/s; loopback TCP %.1f MB/s; "+
		"this disk's synced writes (%d KiB each followed by fsync, as a store syncing every write does) %.1f MB/s; "+
		"a version sharing 90%% of its chunks moved %.1f%% of its bytes (goal <= 15%%)",
		v1.Size>>20, repl, contracts.ChunkSize>>10, relayWindow, raw, tcp, contracts.ChunkSize>>10, disk, 100*moved)
	return measured("replication", "MB/s", repl, raw, ">= 0.5 of the raw relay; <= 15% moved for a 90%-shared version", met, note), nil
}

// relayWindow is how many chunks the raw relay keeps in flight.
const relayWindow = 8

// rawChunkRelay sends n bytes of ChunkSize chunks as requests to a
// responder that answers each at once: NATS alone, no store, no hashes.
func rawChunkRelay(e *Env, url string, n int) (float64, error) {
	conns, _, err := e.rawClients(url, 2)
	if err != nil {
		return 0, err
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	sender, receiver := conns[0], conns[1]
	if _, err := receiver.Subscribe("raw.repl.chunk", func(m *nats.Msg) { _ = m.Respond(nil) }); err != nil {
		return 0, err
	}
	if err := receiver.Flush(); err != nil {
		return 0, err
	}
	chunk := make([]byte, contracts.ChunkSize)
	sem := make(chan struct{}, relayWindow)
	errc := make(chan error, relayWindow)
	start := time.Now()
	for sent := 0; sent < n; sent += len(chunk) {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			if _, err := sender.Request("raw.repl.chunk", chunk, 30*time.Second); err != nil {
				select {
				case errc <- err:
				default:
				}
			}
		}()
	}
	for range relayWindow {
		sem <- struct{}{}
	}
	select {
	case err := <-errc:
		return 0, err
	default:
	}
	return float64(n) / 1e6 / time.Since(start).Seconds(), nil
}

// loopbackTCP copies n bytes over a loopback TCP connection.
func loopbackTCP(n int) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_, err = io.Copy(io.Discard, c)
			c.Close()
		}
		done <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	buf := make([]byte, contracts.ChunkSize)
	start := time.Now()
	for sent := 0; sent < n; sent += len(buf) {
		if _, err := c.Write(buf); err != nil {
			c.Close()
			return 0, err
		}
	}
	c.Close()
	if err := <-done; err != nil {
		return 0, err
	}
	return float64(n) / 1e6 / time.Since(start).Seconds(), nil
}

// syncedWrites writes n bytes in ChunkSize writes to a file in dir, each
// followed by fsync: the most a store that syncs every write can take on
// this disk (the replication's destination syncs each chunk and its meta).
func syncedWrites(dir string, n int) (float64, error) {
	f, err := os.CreateTemp(dir, "synced-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, contracts.ChunkSize)
	start := time.Now()
	for written := 0; written < n; written += len(buf) {
		if _, err := f.Write(buf); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
	}
	return float64(n) / 1e6 / time.Since(start).Seconds(), nil
}

// writeRandom writes size random bytes to path.
func writeRandom(path string, size int, rng *rand.ChaCha8) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for left := size; left > 0; left -= len(buf) {
		_, _ = rng.Read(buf)
		if _, err := f.Write(buf[:min(left, len(buf))]); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
