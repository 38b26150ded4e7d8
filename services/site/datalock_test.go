//go:build unix

package site

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestDataDirLock: a second site process on a data dir in use is refused
// before it opens anything, naming the holder's pid; once released, the
// dir can be taken again. Two sites on one dir shared the embedded
// server's store and lost data.
func TestDataDirLock(t *testing.T) {
	dir := t.TempDir()
	release, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockDataDir(dir); err == nil || !strings.Contains(err.Error(), "in use by another site process (pid "+strconv.Itoa(os.Getpid())+")") {
		t.Fatalf("second lock: got %v, want in use by pid %d", err, os.Getpid())
	}
	_, err = New(context.Background(), Config{DataDir: dir, Listen: "127.0.0.1:0", Site: "LAB", SiteSet: true})
	if err == nil || !strings.Contains(err.Error(), "is in use by another site process") {
		t.Fatalf("a site on the dir in use: got %v, want refused", err)
	}
	if _, err := os.Stat(dir + "/jetstream"); !os.IsNotExist(err) {
		t.Fatalf("the refused site touched the store: %v", err)
	}
	release()
	again, err := lockDataDir(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again()
}
