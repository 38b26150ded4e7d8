package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/agent/control"
	"github.com/stewardhq/steward/contracts"
)

// newSettingsCmd is `steward-agent settings`: the client's local
// configuration layer, as the running agent holds it.
func newSettingsCmd(stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "settings",
		Short: "Reset tattooed settings, or set the local user's own Remote Assistance choices",
		Long: `The site's policy writes Remote Assistance values into this client's local
configuration layer while it manages Remote Assistance ("manage: true").
When the site stops managing it (the settings were undeployed, or manage was
turned off), the last values stay in force and "steward-agent status" shows
them as tattooed, as Configuration Manager leaves its Local Group Policy.
"settings reset" returns tattooed values to the user's own, and removes the
local Remote Control Users record that remote tools left behind after they
were disabled. Values the site manages now are left alone (the next policy
would write them again).

"settings user" records the local user's own Remote Assistance choices
(what a user sets in the operating system): with overrideUserSettings the
site's values win over them, without it the user's win where the user made
a choice.

Both talk to the running agent through its control socket.`,
		Example: `  steward-agent settings reset --state-dir /var/lib/steward-agent
  steward-agent settings user --state-dir ./agent-state unsolicited=false level=view
  steward-agent settings user --state-dir ./agent-state clear -o json`,
	}
	cmd.AddCommand(newSettingsResetCmd(stdout), newSettingsUserCmd(stdout))
	return cmd
}

// settingsFlags are the flags of the settings commands.
type settingsFlags struct {
	dir     string
	output  string
	timeout time.Duration
}

func (f *settingsFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.dir, "state-dir", "", "the agent's state dir (required)")
	fl.StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Second, "how long to wait for the agent to answer")
}

// call sends verb to the agent and prints the answer.
func (f *settingsFlags) call(cmd *cobra.Command, stdout io.Writer, verb string, args []string) error {
	if f.dir == "" {
		return errors.New("--state-dir is required")
	}
	if f.output != "table" && f.output != "json" {
		return fmt.Errorf("-o %q: must be table or json", f.output)
	}
	abs, err := filepath.Abs(f.dir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	var resp contracts.AgentSettingsResponse
	err = control.Call(ctx, control.SocketPath(abs), verb, args, &resp)
	if errors.Is(err, control.ErrNotRunning) {
		return fmt.Errorf("no agent is running with state dir %s", abs)
	}
	if err != nil {
		return err
	}
	if f.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(resp)
	}
	if len(resp.Changed) == 0 {
		fmt.Fprintln(stdout, "Nothing changed.")
	} else {
		fmt.Fprintf(stdout, "Changed: %s\n", strings.Join(resp.Changed, ", "))
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	printRemoteAssistance(tw, resp.Policy)
	return tw.Flush()
}

func newSettingsResetCmd(stdout io.Writer) *cobra.Command {
	var f settingsFlags
	cmd := &cobra.Command{
		Use:   "reset",
		Short: "Return tattooed settings to the user's own values",
		Long: `Return the Remote Assistance values the site left in force ("tattooed") to
the user's own (or the built-in defaults), and remove the Remote Control
Users record left after remote tools were disabled. Prints what changed.`,
		Example: `  steward-agent settings reset --state-dir /var/lib/steward-agent
  steward-agent settings reset --state-dir ./agent-state -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.call(cmd, stdout, control.VerbSettingsReset, nil)
		},
	}
	f.add(cmd)
	return cmd
}

func newSettingsUserCmd(stdout io.Writer) *cobra.Command {
	var f settingsFlags
	cmd := &cobra.Command{
		Use:   "user (KEY=VALUE... | clear)",
		Short: "Set the local user's own Remote Assistance choices",
		Long: `Record the local user's own Remote Assistance choices, as a user would set
them in the operating system:

  unsolicited=true|false   helpers may offer help
  solicited=true|false     the user may ask for help
  level=full|view|none     what a helper may do

"clear" forgets them all (the built-in defaults apply where the site sets
nothing). Keys not given keep their value.`,
		Example: `  steward-agent settings user --state-dir ./agent-state unsolicited=false level=view
  steward-agent settings user --state-dir ./agent-state clear`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.call(cmd, stdout, control.VerbSettingsUser, args)
		},
	}
	f.add(cmd)
	return cmd
}

// printRemoteAssistance writes the Remote Assistance rows of a status.
func printRemoteAssistance(tw io.Writer, p contracts.AgentPolicyStatus) {
	ra := p.RemoteAssistance
	state := "not managed"
	switch {
	case ra.Managed && ra.Override:
		state = "managed by the site (overrides the user's choices)"
	case ra.Managed:
		state = "managed by the site (the user's choices win)"
	case ra.Tattooed:
		state = "tattooed: the site's last values stay until \"steward-agent settings reset\""
	}
	fmt.Fprintf(tw, "Remote Assistance:\t%s\n", state)
	e := ra.Effective
	if e.Unsolicited != nil && e.Solicited != nil && e.Level != nil {
		fmt.Fprintf(tw, "  unsolicited:\t%v (%s)\n", *e.Unsolicited, ra.Sources["unsolicited"])
		fmt.Fprintf(tw, "  solicited:\t%v (%s)\n", *e.Solicited, ra.Sources["solicited"])
		fmt.Fprintf(tw, "  level:\t%s (%s)\n", *e.Level, ra.Sources["level"])
	}
	users := "-"
	if len(p.RemoteControlUsers) > 0 {
		users = strings.Join(p.RemoteControlUsers, ", ")
	}
	fmt.Fprintf(tw, "Remote Control Users:\t%s\n", users)
}
