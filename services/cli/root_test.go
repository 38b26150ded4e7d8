package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestUnknownSubcommand: a group given a word that names none of its
// commands fails, suggesting the nearest; alone, it prints its help.
func TestUnknownSubcommand(t *testing.T) {
	run := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		root := NewRoot(&out, &errb)
		root.SetArgs(args)
		err := root.ExecuteContext(context.Background())
		return out.String(), err
	}
	for _, tc := range []struct {
		args    []string
		unknown string
	}{
		{[]string{"clients", "aprove", "x"}, "aprove"},
		{[]string{"tokens", "revok", "abc"}, "revok"},
		{[]string{"status", "rules", "ad"}, "ad"},
	} {
		if _, err := run(tc.args...); err == nil || !strings.Contains(err.Error(), `unknown command "`+tc.unknown+`"`) {
			t.Errorf("steward %s: got %v, want unknown command %q", strings.Join(tc.args, " "), err, tc.unknown)
		}
	}
	if _, err := run("clients", "aprove", "x"); err == nil || !strings.Contains(err.Error(), "Did you mean this?\n\tapprove") {
		t.Errorf("no suggestion: %v", err)
	}
	out, err := run("clients")
	if err != nil || !strings.Contains(out, "Available Commands") {
		t.Errorf("steward clients: %v, %q; want its help", err, out)
	}
}
