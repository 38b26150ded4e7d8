package replication

import (
	"context"
	"maps"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/internal/natstest"
)

// BenchmarkReplicate sends a 128 MiB version from a parent site to a
// child site over a leaf link, both servers syncing every write as a
// site's server does: go test -run '^$' -bench Replicate -cpuprofile cpu.out
func BenchmarkReplicate(b *testing.B) {
	syncAlways = true
	defer func() { syncAlways = false }()
	const size = 128 << 20
	var files []testFile
	for i := range 16 {
		files = append(files, testFile{path: "f" + string(rune('a'+i)), data: randomBytes(size / 16)})
	}
	ctx := context.Background()
	var cpu time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		par := newSite(b, "PAR", nil)
		chd := newSite(b, "CHD", par)
		p, _ := par.start(), chd.start()
		createVersion(b, p, "bench", "1", files)
		chd.waitInterest("steward.CHD.site.PAR.repl.offer")
		par.waitInterest("steward.CHD.site.PAR.repl.offer")
		var prof *os.File
		if path := os.Getenv("REPL_CPUPROFILE"); path != "" && i == 0 {
			prof, _ = os.Create(path)
			_ = pprof.StartCPUProfile(prof)
		}
		b.StartTimer()
		cpu0 := cpuTime()
		if _, err := p.Distribute(ctx, "bench", "1", []string{"CHD"}, "bench"); err != nil {
			b.Fatal(err)
		}
		natstest.Wait(b, 5*time.Minute, "installed", func() bool {
			j, _ := jobOf(p, "bench", "1", "CHD")
			if j.State == contracts.ContentFailed {
				b.Fatalf("failed: %s", j.Error)
			}
			return j.State == contracts.ContentInstalled
		})
		b.StopTimer()
		cpu += cpuTime() - cpu0
		if prof != nil {
			pprof.StopCPUProfile()
			prof.Close()
		}
		chd.stop()
		par.stop()
		b.StartTimer()
	}
	b.SetBytes(size)
	b.ReportMetric(cpu.Seconds()/float64(b.N)/(size/1e9), "cpu-s/GB")
}

// cpuTime is the CPU time this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkReadChunk reads the chunks of a 64 MiB version in the order a
// sender does (sorted by hash).
func BenchmarkReadChunk(b *testing.B) {
	syncAlways = true
	defer func() { syncAlways = false }()
	par := newSite(b, "PAR", nil)
	p := par.start()
	data := randomBytes(64 << 20)
	_, chunks := createVersion(b, p, "bench", "1", []testFile{{path: "f", data: data}})
	hashes := slices.Sorted(maps.Keys(chunks))
	if os.Getenv("REPL_STORED_ORDER") != "" {
		hashes = hashes[:0]
		for off := 0; off < len(data); off += contracts.ChunkSize {
			hashes = append(hashes, contracts.ChunkHash(data[off:off+contracts.ChunkSize]))
		}
	}
	ctx := context.Background()
	b.SetBytes(contracts.ChunkSize)
	i := 0
	for b.Loop() {
		if _, err := p.ReadChunk(ctx, hashes[i%len(hashes)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkStoreChunk stores distinct chunks, 8 at once, as the despooler
// does after verifying them: the store alone. The chunks' bytes and names
// are made before the clock starts (names are SHA-256 of a counter, which
// storeChunk does not check: PutChunk and the despooler do), so the figure
// is not the harness's hashing: made inside the loop, it halved the rate.
func BenchmarkStoreChunk(b *testing.B) {
	syncAlways = true
	defer func() { syncAlways = false }()
	par := newSite(b, "PAR", nil)
	p := par.start()
	data := make([][]byte, 64)
	for i := range data {
		data[i] = randomBytes(contracts.ChunkSize)
	}
	ctx := context.Background()
	var n atomic.Int64
	b.SetBytes(contracts.ChunkSize)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if err := p.storeChunk(ctx, contracts.ChunkHash([]byte(strconv.FormatInt(i, 10))), data[i%int64(len(data))]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkVerifyChunk is the despooler's check of one chunk against its
// name (SHA-256 of 512 KiB) on one core: with full verification, the
// child's ceiling per core, whatever the store and the link do.
func BenchmarkVerifyChunk(b *testing.B) {
	data := randomBytes(contracts.ChunkSize)
	hash := contracts.ChunkHash(data)
	b.SetBytes(contracts.ChunkSize)
	for b.Loop() {
		if err := checkChunkData(hash, data); err != nil {
			b.Fatal(err)
		}
	}
}
