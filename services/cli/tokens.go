package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
)

func newTokensCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tokens",
		Short: "Enrollment tokens: let agents join the site",
		Long: `Enrollment tokens admit agents without an operator's approval.

A token carries the site code and the site's signing key, so an agent can
pin the key before it first talks to the site. Only a hash of the token's
secret is kept by the site: the token is printed once, at creation.
An agent without a valid token (none, expired, spent, revoked, or from
another site) is recorded as pending until 'steward clients approve'.`,
		Example: `  steward tokens create --uses 10 --ttl 24h --note "lab machines"
  steward tokens list
  steward tokens revoke 0195a3c4-0000-7000-8000-0000000000b2`,
	}
	cmd.AddCommand(newTokensCreateCmd(g), newTokensListCmd(g), newTokensRevokeCmd(g))
	return cmd
}

func newTokensCreateCmd(g *globals) *cobra.Command {
	var ttl time.Duration
	var uses int
	var note string
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a token and print it (alone on stdout)",
		Example: `  steward tokens create --uses 10 --ttl 24h
  TOKEN=$(steward tokens create) && steward-agent run --token "$TOKEN" --state-dir /var/lib/steward-agent`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The site's own check, before asking it, its fields named as
			// the flags they come from ("--ttl 0s: must be ...").
			req := contracts.TokenCreateRequest{TTL: contracts.Duration(ttl), Uses: uses, Note: note}
			if err := req.Validate(); err != nil {
				return fmt.Errorf("--%w", err)
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				tok, info, err := c.TokensCreate(ctx, ttl, uses, note)
				if err != nil {
					return err
				}
				if g.output == "json" {
					return g.print(map[string]any{"token": tok, "info": info}, nil)
				}
				fmt.Fprintln(g.stdout, tok)
				fmt.Fprintf(g.stderr, "token %s: %d use(s), expires %s\n", info.ID, info.Uses, info.Expires.Local().Format(time.RFC3339))
				return nil
			})
		},
	}
	cmd.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token is valid (max 8760h)")
	cmd.Flags().IntVar(&uses, "uses", 1, "how many agents may enroll with it")
	cmd.Flags().StringVar(&note, "note", "", "what the token is for, shown in 'tokens list'")
	return cmd
}

func newTokensListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List tokens (never their secrets)",
		Long:  `List the enrollment tokens: ID, uses left, expiry, who made them and why. Their secrets are never stored, so never shown.`,
		Example: `  steward tokens list
  steward tokens list -o json | jq -r '.[] | select(.used < .uses and (.revoked | not)) | .id'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				list, err := c.TokensList(ctx)
				if err != nil {
					return err
				}
				return g.print(list, func(w io.Writer) { printTokens(w, list) })
			})
		},
	}
}

// printTokens is the table of enrollment or site tokens.
func printTokens(w io.Writer, list []contracts.TokenInfo) {
	fmt.Fprintln(w, "ID\tUSED\tEXPIRES\tSTATE\tCREATED BY\tNOTE")
	for _, t := range list {
		fmt.Fprintf(w, "%s\t%d/%d\t%s\t%s\t%s\t%s\n", t.ID, t.Used, t.Uses, t.Expires.Local().Format(time.RFC3339), tokenState(t), t.CreatedBy, t.Note)
	}
}

// printSiteTokens is printTokens with the child site each token is for.
func printSiteTokens(w io.Writer, list []contracts.TokenInfo) {
	fmt.Fprintln(w, "ID\tCHILD\tUSED\tEXPIRES\tSTATE\tCREATED BY\tNOTE")
	for _, t := range list {
		fmt.Fprintf(w, "%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", t.ID, cmp.Or(t.Child, "any"), t.Used, t.Uses, t.Expires.Local().Format(time.RFC3339), tokenState(t), t.CreatedBy, t.Note)
	}
}

func tokenState(t contracts.TokenInfo) string {
	switch {
	case t.Revoked:
		return "revoked"
	case !time.Now().Before(t.Expires):
		return "expired"
	case t.Used >= t.Uses:
		return "spent"
	}
	return "valid"
}

func newTokensRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "revoke ID",
		Short:   "Revoke a token: no further agent may enroll with it",
		Example: "  steward tokens revoke 0b3f2c1e-...",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				info, err := c.TokensRevoke(ctx, args[0])
				if err != nil {
					return err
				}
				return g.print(info, func(w io.Writer) { fmt.Fprintf(w, "token %s revoked\n", info.ID) })
			})
		},
	}
}
