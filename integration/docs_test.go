package integration

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	agentcli "github.com/stewardhq/steward/agent/cli"
	"github.com/stewardhq/steward/services/cli"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite docs/cli from the commands")

// TestDocsCurrent keeps docs/cli equal to what the commands say about
// themselves (their --help); `make docs` rewrites the pages.
func TestDocsCurrent(t *testing.T) {
	for _, env := range []string{"STEWARD_SERVER", "STEWARD_IDENTITY", "STEWARD_SITE", "STEWARD_OPERATOR",
		"STEWARD_OTLP_ENDPOINT", "STEWARD_LOG_LEVEL", "STEWARD_TOKEN", "STEWARD_CA"} {
		t.Setenv(env, "")
	}
	const dir = "../docs/cli"
	want := map[string][]byte{}
	for _, root := range []*cobra.Command{cli.NewRoot(io.Discard, io.Discard), agentcli.NewRoot(io.Discard, io.Discard)} {
		root.DisableAutoGenTag = true
		tmp := t.TempDir()
		if err := doc.GenMarkdownTree(root, tmp); err != nil {
			t.Fatal(err)
		}
		files, _ := os.ReadDir(tmp)
		for _, f := range files {
			data, err := os.ReadFile(filepath.Join(tmp, f.Name()))
			if err != nil {
				t.Fatal(err)
			}
			want[f.Name()] = data
		}
	}
	have, _ := os.ReadDir(dir)
	if *updateDocs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range have {
			if strings.HasSuffix(f.Name(), ".md") {
				os.Remove(filepath.Join(dir, f.Name()))
			}
		}
		for name, data := range want {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	for _, f := range have {
		if _, ok := want[f.Name()]; !ok && strings.HasSuffix(f.Name(), ".md") {
			t.Errorf("docs/cli/%s documents a command that no longer exists: run make docs", f.Name())
		}
	}
	for name, data := range want {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != string(data) {
			t.Errorf("docs/cli/%s is not current: run make docs", name)
		}
	}
}
