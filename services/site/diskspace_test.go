package site

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestStoreFreeSpace: the replication service is given the free space of
// the embedded server's JetStream store (the despooler refuses offers
// that would fill its disk); with an external cluster, none.
func TestStoreFreeSpace(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "jetstream"), 0o700); err != nil {
		t.Fatal(err)
	}
	s := &Site{cfg: Config{DataDir: dir}}
	free := s.storeFreeSpace()
	if free == nil {
		t.Fatal("no free space function with the embedded server")
	}
	n, err := free()
	if runtime.GOOS == "linux" || runtime.GOOS == "darwin" {
		if err != nil || n <= 0 {
			t.Fatalf("free space of %s: %d, %v", dir, n, err)
		}
	}
	if _, err := (&Site{cfg: Config{DataDir: filepath.Join(dir, "none")}}).storeFreeSpace()(); err == nil && (runtime.GOOS == "linux" || runtime.GOOS == "darwin") {
		t.Fatal("a store that does not exist: no error")
	}
	if (&Site{cfg: Config{DataDir: dir, Server: "nats://nats:4222"}}).storeFreeSpace() != nil {
		t.Fatal("a free space function with an external cluster")
	}
}
