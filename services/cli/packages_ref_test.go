package cli

import (
	"testing"

	"github.com/spf13/cobra"
)

// TestPackageRef: NAME@VERSION, as the site writes versions in its
// answers, is taken wherever NAME is, and must agree with --version.
func TestPackageRef(t *testing.T) {
	for _, tc := range []struct {
		arg, flag, name, version string
		ok                       bool
	}{
		{"tools", "", "tools", "", true},
		{"tools", "1.0", "tools", "1.0", true},
		{"tools@1.0", "", "tools", "1.0", true},
		{"tools@1.0", "1.0", "tools", "1.0", true},
		{"tools@1.0", "2.0", "", "", false},
	} {
		v := tc.flag
		name, err := packageRef(tc.arg, &v)
		if (err == nil) != tc.ok || (tc.ok && (name != tc.name || v != tc.version)) {
			t.Errorf("packageRef(%q, --version %q) = %q, %q, %v", tc.arg, tc.flag, name, v, err)
		}
	}
	cmd := &cobra.Command{Use: "show"}
	for arg, ok := range map[string]bool{"tools": true, "tools@1.0": true, "tools@": false, "../x@1": false, "tools@bad version": false} {
		if err := packageArg(cmd, []string{arg}); (err == nil) != ok {
			t.Errorf("packageArg(%q): %v, want ok %v", arg, err, ok)
		}
	}
}
