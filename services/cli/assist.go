package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
)

// newAssistCmd is `steward assist`: Remote Assistance, the user's own
// terminal shared with a helper.
func newAssistCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "assist",
		Short: "Remote Assistance: take users' requests for help, or offer help",
		Long: `Remote Assistance shares the terminal of the user logged on to a client with a
helper. Solicited: the user runs 'steward-agent assist' and asks for help;
helpers see the request in 'steward assist list' and take it with 'accept'.
Unsolicited: a helper offers help with 'offer' and the user accepts it on
the client. The client's Remote Assistance settings decide which of the two
are allowed and the helper's level (full control, or viewing only); the
helper needs Collection:RemoteControl on the client and must be one of its
Permitted Viewers or local administrators, as for any remote session.`,
		Example: `  steward assist list
  steward assist accept 01935c1e-7a2b-7c3d-9e4f-5a6b7c8d9e0f
  steward assist offer web-01`,
	}
	list := &cobra.Command{
		Use:     "list",
		Short:   "List open requests for assistance",
		Example: "  steward assist list -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				rs, err := c.AssistList(ctx)
				if err != nil {
					return err
				}
				return g.print(rs, func(w io.Writer) {
					fmt.Fprintln(w, "REQUEST\tCLIENT\tUSER\tASKED\tMESSAGE")
					for _, r := range rs {
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Client.Name, r.User, ago(r.Created), r.Message)
					}
				})
			})
		},
	}
	accept := &cobra.Command{
		Use:     "accept REQUEST",
		Short:   "Take a user's request for assistance: join the shared terminal",
		Example: "  steward assist accept 01935c1e-7a2b-7c3d-9e4f-5a6b7c8d9e0f",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withSession(cmd, func(ctx context.Context, c *client.Client) error {
				s, err := c.AssistAccept(ctx, args[0])
				if err != nil {
					return err
				}
				return g.helpTerminal(ctx, s)
			})
		},
	}
	offer := &cobra.Command{
		Use:   "offer CLIENT",
		Short: "Offer assistance to the user of a client (unsolicited)",
		Long: `Offer help to the user logged on to CLIENT. The user sees the offer in the
running 'steward-agent assist' (or 'steward-agent consent') and accepts or
refuses it; no answer within the prompt timeout (the client's
remoteTools.promptTimeout, 30s unless set) is a refusal. While the user
decides, this command says how long they have, and waits as long.`,
		Example: "  steward assist offer web-01",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withSession(cmd, func(ctx context.Context, c *client.Client) error {
				// The broker's check says how long the user has; a
				// refusal is left to the offer itself, which is audited.
				cctx, cancel := context.WithTimeout(ctx, g.timeout)
				chk, err := c.SessionCheck(cctx, args[0], contracts.SessionAssist, 0)
				cancel()
				if err == nil && chk.Consent {
					fmt.Fprintf(g.stderr, "waiting for the user of %s to answer (up to %s)…\n", chk.Client.Name, contracts.HumanDuration(time.Duration(chk.PromptTimeout)))
				}
				cols, rows := termSize()
				s, err := c.AssistOffer(ctx, contracts.SessionOpenRequest{Ref: args[0], Cols: cols, Rows: rows})
				if err != nil {
					return err
				}
				return g.helpTerminal(ctx, s)
			})
		},
	}
	cmd.AddCommand(list, accept, offer)
	return cmd
}

// helpTerminal runs a helper's side of an assistance session: view access
// sends nothing.
func (g *globals) helpTerminal(ctx context.Context, s *client.Session) error {
	fmt.Fprintf(g.stderr, "assisting %s with %s access (session %s); leave with Enter ~ .\r\n", s.Info.Client.Name, s.Info.Access, s.Info.ID)
	stdin, isTerm := g.input()
	if s.Info.Access != contracts.AccessFull {
		stdin = strings.NewReader("")
	}
	return g.runTerminal(ctx, s, stdin, isTerm, s.Info.Access != contracts.AccessFull)
}
