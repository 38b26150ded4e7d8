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

// TestFlagsCheckedBeforeConnecting: a bad flag is named as a flag, before
// any site is asked (none runs here).
func TestFlagsCheckedBeforeConnecting(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tokens", "create", "--ttl", "0"}, "--ttl 0s: must be between 1s and"},
		{[]string{"tokens", "create", "--uses", "0"}, "--uses 0: must be between 1 and"},
		{[]string{"sites", "token", "create", "--child", "bad code"}, "--child: site code"},
		{[]string{"packages", "show", "tools@1.0", "--version", "2.0"}, "tools@1.0 says version 1.0, --version says 2.0"},
	} {
		var out, errb bytes.Buffer
		root := NewRoot(&out, &errb)
		root.SetArgs(append(tc.args, "--server", "nats://127.0.0.1:1"))
		if err := root.ExecuteContext(context.Background()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("steward %s: got %v, want %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
}
