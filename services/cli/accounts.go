package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
)

// newAccountsCmd is `steward accounts`: site accounts with sealed secrets.
func newAccountsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "accounts",
		Aliases: []string{"account"},
		Short:   "Site accounts: the credentials the site and its clients use, sealed",
		Long: `A site account is a named credential with a purpose: the account clients use
to reach content (network-access), to read a package (package-access), to
install agents (client-push), to send mail (smtp), ... Purposes:
  ` + strings.Join(contracts.AccountPurposes(), ", ") + `

Each purpose holds up to 10 accounts, tried newest first. To change a
password without locking clients out, add a new account, wait until every
client has it, then remove the old one.

Secrets are sealed here, to the site's key, before they are sent; the site
keeps them sealed and hands them only to a client, sealed to that client's
own key. No command shows a secret, and none takes one on its command line:
give it on standard input with --password-stdin.`,
		Example: `  steward accounts add network-access 'LAB\svc-content' --password-stdin < pw.txt
  steward accounts list -o json
  steward accounts remove network-access 'LAB\svc-old'`,
	}
	cmd.AddCommand(newAccountsAddCmd(g), newAccountsListCmd(g), newAccountsRemoveCmd(g))
	return cmd
}

// readSecret reads a secret from r: everything, without one trailing
// newline ("\n" or "\r\n").
func readSecret(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("read the password from stdin: %w", err)
	}
	data = bytes.TrimSuffix(data, []byte("\n"))
	data = bytes.TrimSuffix(data, []byte("\r"))
	if len(data) == 0 {
		return nil, errors.New("no password on stdin")
	}
	return data, nil
}

func newAccountsAddCmd(g *globals) *cobra.Command {
	var stdin, replace bool
	cmd := &cobra.Command{
		Use:   "add PURPOSE NAME --password-stdin",
		Short: "Add a site account (or --replace the password of one)",
		Long: `Add an account of PURPOSE named NAME (for example 'LAB\svc-content'), reading
its password from standard input (one trailing newline is dropped). The
password is sealed on this machine to the site's key before it is sent.

--replace changes the password of an existing account in place. Clients that
still hold the old one fail until they get the new one: prefer adding a new
account and removing the old one later.`,
		Example: `  steward accounts add network-access 'LAB\svc-content' --password-stdin < pw.txt
  printf '%s' "$PW" | steward accounts add smtp alerts@lab.example --password-stdin
  steward accounts add network-access 'LAB\svc-content' --password-stdin --replace < new.txt`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return fmt.Errorf("%s needs PURPOSE and NAME, got %d arguments", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := contracts.ValidAccountPurpose(args[0]); err != nil {
				return err
			}
			if err := contracts.ValidAccountName(args[1]); err != nil {
				return err
			}
			if !stdin {
				return errors.New("give the password on standard input with --password-stdin (never on the command line, where others can read it)")
			}
			secret, err := readSecret(cmd.InOrStdin())
			if err != nil {
				return err
			}
			defer clear(secret)
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				info, err := c.AccountsAdd(ctx, args[0], args[1], secret, replace)
				if err != nil {
					return err
				}
				return g.print(info, func(w io.Writer) {
					verb := "added"
					if replace {
						verb = "replaced the password of"
					}
					fmt.Fprintf(w, "%s %s account %s\n", verb, info.Purpose, info.Name)
				})
			})
		},
	}
	cmd.Flags().BoolVar(&stdin, "password-stdin", false, "read the password from standard input")
	cmd.Flags().BoolVar(&replace, "replace", false, "replace the password of an existing account")
	return cmd
}

func newAccountsListCmd(g *globals) *cobra.Command {
	var purpose string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List site accounts (never their secrets)",
		Long: `List site accounts by purpose, newest first within a purpose (the order in
which they are tried): name, purpose, when created and when the password was
last replaced. Secrets are never shown.`,
		Example: `  steward accounts list
  steward accounts list --purpose network-access -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if purpose != "" {
				if err := contracts.ValidAccountPurpose(purpose); err != nil {
					return err
				}
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				list, err := c.AccountsList(ctx, purpose)
				if err != nil {
					return err
				}
				return g.print(list, func(w io.Writer) {
					fmt.Fprintln(w, "PURPOSE\tNAME\tCREATED\tCREATED BY\tROTATED")
					for _, a := range list {
						rotated := "-"
						if !a.Rotated.IsZero() {
							rotated = a.Rotated.Local().Format(time.RFC3339) + " by " + a.RotatedBy
						}
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", a.Purpose, a.Name, a.Created.Local().Format(time.RFC3339), a.CreatedBy, rotated)
					}
				})
			})
		},
	}
	cmd.Flags().StringVar(&purpose, "purpose", "", "only accounts of this purpose")
	return cmd
}

func newAccountsRemoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "remove PURPOSE NAME",
		Short:   "Remove a site account",
		Example: `  steward accounts remove network-access 'LAB\svc-old'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return fmt.Errorf("%s needs PURPOSE and NAME, got %d arguments", cmd.CommandPath(), len(args))
			}
			return contracts.ValidAccountPurpose(args[0])
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				info, err := c.AccountsRemove(ctx, args[0], args[1])
				if err != nil {
					return err
				}
				return g.print(info, func(w io.Writer) { fmt.Fprintf(w, "removed %s account %s\n", info.Purpose, info.Name) })
			})
		},
	}
}
