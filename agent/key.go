package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"

	"github.com/nats-io/nkeys"
)

// KeyFileName is the agent's NKey seed file inside the state dir. The seed
// is the agent's credential: the site knows the agent by its public key.
const KeyFileName = "agent.nk"

// errNoKey means the key file does not exist.
var errNoKey = errors.New("no agent key")

// readKey reads the NKey user seed at path. It warns when group or others
// may read the file. The seed never reaches a log.
func readKey(path string, log *slog.Logger) (nkeys.KeyPair, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoKey
	}
	if err != nil {
		return nil, fmt.Errorf("agent key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("agent key %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		log.Warn("the agent key file is readable by group or others; anyone who reads it can act as this client",
			"path", path, "mode", fmt.Sprintf("%04o", perm), "fix", "chmod 600 "+path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("agent key: %w", err)
	}
	defer wipe(data)
	kp, err := nkeys.ParseDecoratedNKey(data)
	if err != nil {
		return nil, fmt.Errorf("agent key %s holds no NKey seed: %w", path, err)
	}
	if _, err := kp.Seed(); err != nil {
		return nil, fmt.Errorf("agent key %s holds a public key, not a seed", path)
	}
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return nil, fmt.Errorf("agent key %s is not an NKey user seed (it must start with SU)", path)
	}
	return kp, nil
}

// createKey makes a new NKey user and writes its seed to path, mode 0600,
// atomically: a crash leaves either no file or a whole one.
func createKey(path string) (nkeys.KeyPair, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("create agent key: %w", err)
	}
	seed, err := kp.Seed() // the key pair's own copy: wiped by kp.Wipe, not here
	if err != nil {
		return nil, fmt.Errorf("create agent key: %w", err)
	}
	var b bytes.Buffer
	b.WriteString("# Steward agent key: this machine's credential at its site. Keep it secret (mode 0600).\n")
	b.WriteString("-----BEGIN USER NKEY SEED-----\n")
	b.Write(seed)
	b.WriteString("\n------END USER NKEY SEED------\n")
	defer wipe(b.Bytes())

	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+KeyFileName+"-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("write agent key: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(b.Bytes())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("write agent key: %w", err)
	}
	syncDir(dir)
	return kp, nil
}

// syncDir makes a rename in dir durable where the platform allows it.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 'x'
	}
}
