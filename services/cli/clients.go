package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
)

// newClientsCmd is `steward clients`: the client machines of the site.
func newClientsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "clients",
		Aliases: []string{"client"},
		Short:   "List, show, approve, block and delete client machines",
		Long: `A client is a machine whose agent enrolled with this site. Its record holds
what the agent reports in its heartbeats (name, OS, agent version), whether it
is online, and its status:

  pending   enrolled without a token; waits for an operator to approve it
  approved  admitted (with a token, or by an operator); managed by the site
  blocked   refused: the site disconnects it and rejects its reconnects

A client goes offline when its connection closes or when it misses three
heartbeats. Commands that take REF accept a client's name or its ID; when
several clients share a name, use the ID.`,
		Example: `  steward clients list
  steward clients list --status pending
  steward clients approve web-01
  steward clients show 0b6f2c3e-9a41-4c57-8f0e-2d5b7c9a1e33 -o json`,
	}
	cmd.AddCommand(
		newClientsListCmd(g),
		newClientsShowCmd(g),
		newClientsApproveCmd(g),
		newClientsBlockCmd(g),
		newClientsDeleteCmd(g),
		newClientsPolicyCmd(g),
	)
	return cmd
}

func newClientsListCmd(g *globals) *cobra.Command {
	var status string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List clients, sorted by name",
		Long: `List the site's clients, sorted by name then ID.

With -o json the output is a JSON array of client objects ([] when there are
none), convenient for scripts and jq.`,
		Example: `  steward clients list
  steward clients list --status pending       # waiting for approval
  steward clients list -o json | jq -r '.[] | select(.online | not) | .name'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch status {
			case "", contracts.ClientPending, contracts.ClientApproved, contracts.ClientBlocked:
			default:
				return fmt.Errorf("--status %q: must be pending, approved or blocked", status)
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				clients, err := c.ClientsList(ctx, status)
				if err != nil {
					return err
				}
				if clients == nil {
					clients = []contracts.Client{}
				}
				return g.print(clients, func(w io.Writer) { clientsTable(w, clients) })
			})
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only clients in this status: pending, approved or blocked")
	return cmd
}

func newClientsShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show REF",
		Short: "Show one client",
		Long:  `Show everything the site records about one client. REF is its name or ID.`,
		Example: `  steward clients show web-01
  steward clients show 0b6f2c3e-9a41-4c57-8f0e-2d5b7c9a1e33 -o json`,
		Args: refArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				cl, err := c.ClientsShow(ctx, args[0])
				if err != nil {
					return err
				}
				return g.print(cl, func(w io.Writer) { clientDetail(w, cl) })
			})
		},
	}
}

func newClientsApproveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "approve REF",
		Short: "Approve a pending client",
		Long: `Approve a client that enrolled without a token and waits in status pending.
The agent hears of it at once and starts to be managed. REF is its name or ID.`,
		Example: `  steward clients list --status pending
  steward clients approve web-01`,
		Args: refArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				cl, err := c.ClientsApprove(ctx, args[0])
				if err != nil {
					return err
				}
				return g.print(cl, func(w io.Writer) { clientsTable(w, []contracts.Client{cl}) })
			})
		},
	}
}

func newClientsBlockCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "block REF",
		Short: "Block a client: disconnect it and refuse its reconnects",
		Long: `Block a client. The site disconnects it within 2 seconds and refuses its
reconnects; its record stays, with status blocked, so you can see what it was.
Use it for a lost or compromised machine. REF is its name or ID.`,
		Example: `  steward clients block web-01`,
		Args:    refArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				cl, err := c.ClientsBlock(ctx, args[0])
				if err != nil {
					return err
				}
				return g.print(cl, func(w io.Writer) { clientsTable(w, []contracts.Client{cl}) })
			})
		},
	}
}

func newClientsDeleteCmd(g *globals) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete REF --yes",
		Short: "Delete a client's identity and record",
		Long: `Delete a client: the site forgets its identity and its record. Its agent's key
is then unknown: the agent shows "deleted" (steward-agent status) and enrolls
again, as a new client, when it is given a token (steward tokens create); an
agent still holding a valid token (STEWARD_TOKEN in its service) comes back at
once. To keep a machine out, block it instead, or revoke its token.

Deleting cannot be undone, so the command asks for --yes. REF is its name or ID.`,
		Example: `  steward clients delete old-laptop --yes`,
		Args:    refArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return fmt.Errorf("deleting client %q cannot be undone: re-run with --yes to confirm", args[0])
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				cl, err := c.ClientsDelete(ctx, args[0])
				if err != nil {
					return err
				}
				return g.print(cl, func(w io.Writer) { fmt.Fprintf(w, "deleted client %s (%s)\n", cl.Name, cl.ID) })
			})
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm the deletion")
	return cmd
}

// refArg requires the one REF argument.
func refArg(cmd *cobra.Command, args []string) error {
	if len(args) != 1 || args[0] == "" {
		return fmt.Errorf("%s needs one client name or id (REF), got %d arguments", cmd.CommandPath(), len(args))
	}
	return nil
}

// clientsTable writes clients as rows.
func clientsTable(w io.Writer, clients []contracts.Client) {
	fmt.Fprintln(w, "NAME\tID\tSTATUS\tONLINE\tOS\tVERSION\tLAST SEEN")
	for _, c := range clients {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			c.Name, c.ID, c.Status, yesNo(c.Online), osArch(c), dash(c.AgentVersion), ago(c.LastSeen))
	}
}

// clientDetail writes one client as labelled lines.
func clientDetail(w io.Writer, c contracts.Client) {
	capability := "-"
	if c.Capability > 0 {
		capability = strconv.Itoa(c.Capability)
	}
	rows := [][2]string{
		{"Name", c.Name},
		{"ID", c.ID},
		{"Status", c.Status},
	}
	if c.PendingReason != "" {
		rows = append(rows, [2]string{"Pending because", c.PendingReason})
	}
	rows = append(rows, [][2]string{
		{"Online", yesNo(c.Online)},
		{"Hostname", dash(c.Hostname)},
		{"OS", osArch(c)},
		{"Agent version", dash(c.AgentVersion)},
		{"Capability", capability},
		{"First seen", stamp(c.FirstSeen)},
		{"Last seen", stamp(c.LastSeen)},
		{"Key", dash(c.Key)},
	}...)
	for _, r := range rows {
		fmt.Fprintf(w, "%s:\t%s\n", r[0], r[1])
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func osArch(c contracts.Client) string {
	switch {
	case c.OS == "":
		return "-"
	case c.Arch == "":
		return c.OS
	}
	return c.OS + "/" + c.Arch
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// stamp is a time with its age, for the detail view.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.RFC3339) + " (" + ago(t) + ")"
}
