package cli

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
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

// TestEveryCommandHasExamples: the README promises --help with examples
// for every command.
func TestEveryCommandHasExamples(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Example == "" && !c.Hidden && c.Name() != "help" && c.Name() != "completion" {
			t.Errorf("%s has no examples", c.CommandPath())
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(NewRoot(io.Discard, io.Discard))
}
