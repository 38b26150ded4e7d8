package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// applyFile runs steward settings apply -f on a file holding text; no
// site runs, so only the file's check can answer.
func applyFile(t *testing.T, text string) error {
	t.Helper()
	file := filepath.Join(t.TempDir(), "settings.yaml")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	root := NewRoot(&out, &errb)
	root.SetArgs([]string{"settings", "apply", "-f", file, "--server", "nats://127.0.0.1:1"})
	return root.ExecuteContext(context.Background())
}

// TestSettingsFileOverMaxBytes: 200 permitted viewers of 50 characters
// (each list within its bounds) are over the 8192 bytes a settings object
// may be; the file's check says so with the line, before anything is
// sent. It passed, and the site refused it later without a line.
func TestSettingsFileOverMaxBytes(t *testing.T) {
	var b strings.Builder
	b.WriteString("name: Many viewers\npriority: 10\nremoteTools:\n  enabled: true\n  permittedViewers:\n")
	for i := range 200 {
		fmt.Fprintf(&b, "    - user-%03d-%s\n", i, strings.Repeat("v", 41))
	}
	err := applyFile(t, b.String())
	if err == nil || !strings.Contains(err.Error(), "line 5: remoteTools.permittedViewers: the settings object is ") || !strings.Contains(err.Error(), "over the 8192 one may be") {
		t.Fatalf("got %v, want line 5 naming the size limit", err)
	}
}

// TestSettingsFileNameLikeAnID: a name that reads as a settings id is
// refused with its line (it was accepted, and settings show/delete
// default-client-settings then reached the built-in object).
func TestSettingsFileNameLikeAnID(t *testing.T) {
	for _, name := range []string{"default-client-settings", "0f3c2a9e-5b1d-4c7e-9a8b-2d6f1e4c3b7a"} {
		err := applyFile(t, "priority: 10\nname: "+name+"\n")
		if err == nil || !strings.Contains(err.Error(), "line 2: name: ") || !strings.Contains(err.Error(), "choose another name") {
			t.Errorf("name %s: got %v, want line 2 refusing the name", name, err)
		}
	}
}

// TestSettingsFileWording: a missing priority is reported as required
// (it read "priority: 0: must be 1 to 9999"), and a tab in the YAML says
// that YAML indents with spaces (it said only "found character that
// cannot start any token").
func TestSettingsFileWording(t *testing.T) {
	err := applyFile(t, "name: Lab remote tools\nremoteTools:\n  enabled: true\n")
	if err == nil || !strings.Contains(err.Error(), "priority: required, and the file has none: give it a priority of 1 to 9999") || strings.Contains(err.Error(), "priority: 0") {
		t.Errorf("no priority: got %v, want priority: required", err)
	}
	err = applyFile(t, "name: Lab remote tools\npriority: 10\nremoteTools:\n\tenabled: true\n")
	if err == nil || !strings.Contains(err.Error(), "found character that cannot start any token") || !strings.Contains(err.Error(), "(line 4 has a tab: YAML indents with spaces, not tabs)") {
		t.Errorf("a tab: got %v, want the hint naming line 4", err)
	}
	if err := applyFile(t, "name: Lab\npriority: 0\n"); err == nil || !strings.Contains(err.Error(), "line 2: priority: 0: must be 1 to 9999") {
		t.Errorf("priority 0: got %v, want line 2: priority: 0: must be 1 to 9999", err)
	}
	if err := applyFile(t, "name: Lab\npriority: 10\ndescription: \"a\tb\"\nremoteTools: {enabled: maybe}\n"); err == nil || strings.Contains(err.Error(), "tabs") {
		t.Errorf("another error with a tab in a string: got %v, want no tab hint", err)
	}
}
