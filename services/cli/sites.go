package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
)

func newSitesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sites",
		Short: "The site hierarchy: the parent this site links to and its child sites",
		Long: `Sites link into a hierarchy: a child site links to its parent over a NATS
leaf connection, and packages are replicated down the links.

At the parent, which runs steward serve --leaf-listen HOST:PORT:

  steward sites token create        # a one-time site token, printed once

At the child, the first start:

  steward serve --site BR1 --parent nats://hq.example.org:7422 --parent-token STS1-...

The token carries the parent's site code, signing key and CA fingerprint,
which the child pins (<data>/parent.json), so the link is TLS to the pinned
CA and the parent is known before the child has talked to it. The parent's
auth callout admits the link, consumes the token and records the child's
leaf key; the child then joins, proving its site signing key, which the
parent pins. Later starts link with the leaf key alone.`,
		Example: `  steward sites list
  steward sites token create --child BR1`,
	}
	token := &cobra.Command{Use: "token", Short: "Site tokens: let a child site link to this one",
		Example: `  steward sites token create --child BR1 --ttl 2h`}
	token.AddCommand(newSitesTokenCreateCmd(g), &cobra.Command{
		Use:   "list",
		Short: "List site tokens (never their secrets)",
		Long: `List the site tokens: ID, the child site it is for (any when made without
--child), whether used, expiry, state (valid, spent, expired, revoked), who
made them and why; -o json gives the state and child too. Needs Site:Read.`,
		Example: `  steward sites token list
  steward sites token list -o json | jq -r '.[] | select(.state == "valid") | .id'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				list, err := c.SitesTokenList(ctx)
				if err != nil {
					return err
				}
				rows := make([]siteTokenRow, len(list))
				for i, t := range list {
					rows[i] = siteTokenRow{TokenInfo: t, State: tokenState(t)}
				}
				return g.print(rows, func(w io.Writer) { printSiteTokens(w, list) })
			})
		},
	}, &cobra.Command{
		Use:     "revoke ID",
		Short:   "Revoke a site token: no child may link with it",
		Long:    `Revoke a site token not used yet; a link it already made stays. Needs Site:Modify; audited (status 1054).`,
		Example: `  steward sites token revoke 0195a3c4-0000-7000-8000-0000000000c3`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				info, err := c.SitesTokenRevoke(ctx, args[0])
				if err != nil {
					return err
				}
				return g.print(info, func(w io.Writer) { fmt.Fprintf(w, "site token %s revoked\n", info.ID) })
			})
		},
	})
	cmd.AddCommand(newSitesListCmd(g), token)
	return cmd
}

// siteTokenRow is a site token as -o json lists it: with its state, as the
// table shows it.
type siteTokenRow struct {
	contracts.TokenInfo
	State string `json:"state"` // valid | spent | expired | revoked
}

func newSitesTokenCreateCmd(g *globals) *cobra.Command {
	var ttl time.Duration
	var child, note string
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a one-time site token for a child site and print it (alone on stdout)",
		Long: `Create a one-time site token and print it. A child site presents it on its
first link (steward serve --parent URL --parent-token TOKEN); the link
consumes it. Only the SHA-256 of its secret is kept here, so it is shown
once. --child makes it usable by that site code alone.

It needs Site:Modify, and is audited (status message 1050; the link it
admits is 1051, the child's join 1052).`,
		Example: `  steward sites token create --child BR1 --note "Branch office 1"
  TOKEN=$(steward sites token create --ttl 2h)
  steward serve --site BR1 --parent nats://hq.example.org:7422 --parent-token "$TOKEN"   # at the child`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if child != "" {
				if err := contracts.ValidName(child); err != nil {
					return fmt.Errorf("--child: site code: %w", err)
				}
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				tok, info, err := c.SitesTokenCreate(ctx, ttl, child, note)
				if err != nil {
					return err
				}
				if g.output == "json" {
					return g.print(map[string]any{"token": tok, "info": info, "child": child}, nil)
				}
				fmt.Fprintln(g.stdout, tok)
				by := "any site"
				if child != "" {
					by = "site " + child
				}
				fmt.Fprintf(g.stderr, "site token %s: one link, by %s, expires %s\n", info.ID, by, info.Expires.Local().Format(time.RFC3339))
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token is valid (max 8760h)")
	f.StringVar(&child, "child", "", "the only site code that may link with the token (default: any)")
	f.StringVar(&note, "note", "", "what the token is for")
	return cmd
}

func newSitesListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the sites linked to this one: parent and children",
		Long: `List the sites linked to this one: the parent (role parent) and the child
sites (role child), with the signing key pinned for each (a parent's from
the site token, a child's from its join; "-" until it joined), when the link
was made, when the site was last heard from (heartbeats every 30 s both
ways) and whether it is connected (heard from within three heartbeats).
BACKLOG is what replication still has to send to the site. ERROR is the
last problem with the peer, such as a refused join.

It needs Site:Read.`,
		Example: `  steward sites list
  steward sites list -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				list, err := c.SitesList(ctx)
				if err != nil {
					return err
				}
				// The backlog is replication's: what its sender still has to
				// send to each site. Without the service (or Site:Read on it)
				// the column stays 0.
				if routes, err := c.RouteList(ctx); err == nil {
					for i := range list {
						for _, r := range routes {
							if r.Site == list[i].Site {
								list[i].Backlog = r.Backlog
							}
						}
					}
				}
				return g.print(list, func(w io.Writer) {
					fmt.Fprintln(w, "SITE\tROLE\tSIGNING KEY\tLINKED\tLAST CONTACT\tCONNECTED\tBACKLOG\tERROR")
					for _, p := range list {
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Site, p.Role, dash(p.SigningKey), ago(p.Linked), ago(p.LastContact), yesNo(p.Connected), bytesIEC(uint64(p.Backlog)), dash(p.Error))
					}
				})
			})
		},
	}
}
