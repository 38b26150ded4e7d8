package cli

import (
	"errors"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/agent"
)

func newAssistCmd(stdout io.Writer) *cobra.Command {
	var dir, message, shell string
	cmd := &cobra.Command{
		Use:   "assist",
		Short: "Ask for help: share this terminal with a helper (Remote Assistance)",
		Long: `Ask the site's helpers for assistance and share a shell in this terminal with
the helper who takes the request, as Windows Remote Assistance shares a
desktop. The command starts a shell (--shell, default $SHELL) that you use
as usual; everything it shows is also shown to the helper, and the helper
may type into it when the client's Remote Assistance level is full (view:
the helper only watches; the agent drops the helper's keys).

The agent sends the request to the site and prints its ID; a helper who
takes it is connected at once (you asked). While the command runs, a
helper may also offer help when unsolicited assistance is on: the offer
appears here (and in "steward-agent consent") and needs your answer.

Keys (Ctrl-] then a letter, as in telnet):
  Ctrl-] y   accept the helper's offer        Ctrl-] n   refuse it
  Ctrl-] q   end the helper's session now     Ctrl-] Ctrl-]  type Ctrl-]
Exit the shell to stop sharing; the helper's session ends with it.

Solicited assistance must be on for this client (remoteAssistance.solicited
in the site's settings, or "steward-agent settings user solicited=true"
when the site does not manage it). Run it as the user that runs the agent
(sudo): the control socket is private to that user; the request names you
($SUDO_USER under sudo).`,
		Example: `  sudo steward-agent assist --state-dir /var/lib/steward-agent --message "my build fails"
  steward-agent assist --state-dir ./agent-state --shell /bin/bash`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return errors.New("--state-dir is required")
			}
			return agent.Assist(cmd.Context(), agent.AssistOptions{
				StateDir: dir, User: osUser(), Message: message, Shell: shell, In: os.Stdin, Out: stdout,
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "state-dir", "", "the agent's state dir (required)")
	f.StringVar(&message, "message", "", "what you need help with, for the helpers (at most 1000 bytes)")
	f.StringVar(&shell, "shell", "", "the shell to share (default $SHELL, else /bin/sh)")
	return cmd
}
