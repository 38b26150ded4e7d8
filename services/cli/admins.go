package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nats-io/nkeys"
	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
)

// newAdminsCmd is `steward admins`: administrative users and groups.
func newAdminsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "admins",
		Aliases: []string{"admin"},
		Short:   "Administrative users and groups: who may do what, on which clients",
		Long: `Administrative users are the operators of the site. Each has security roles
(what it may do: steward roles list) and collections (on which clients: only
those in one of its collections; "All Systems" is every client). A group has
roles and collections too, and its member users get them: an operator may do
what the union of its own and its groups' roles allows, on the union of their
collections.

An operator is an NKey. 'admins add --out FILE' makes the key and writes its
seed to FILE (mode 0600): hand the file to the operator, who runs
'steward --identity FILE ...'. Better, the operator makes the key on their
own machine ('steward admins keygen'), and you add only the public key
('--public-key'): the seed never leaves their machine.

Nobody can give more than they have: roles whose permissions are all their
own, collections within their own. The site always keeps a Full
Administrator over All Systems: removing, revoking or demoting the last one
is refused. Every change is recorded as an audit event.`,
		Example: `  steward admins add alice --role "Remote Tools Operator" --collection Web --out alice.nk
  steward admins add erin --role "Full Administrator" --collection "All Systems" --public-key UABC...
  steward admins add helpdesk --group --role "Remote Tools Operator" --collection Web
  steward admins add bob --member-of helpdesk --out bob.nk
  steward admins update alice --add-role "Read-only Analyst" --remove-collection Web --add-collection Servers
  steward admins revoke alice`,
	}
	cmd.AddCommand(newAdminsAddCmd(g), newAdminsUpdateCmd(g), newAdminsListCmd(g), newAdminsShowCmd(g),
		newAdminsRevokeCmd(g), newAdminsDeleteCmd(g), newAdminsKeygenCmd(g))
	return cmd
}

func newAdminsAddCmd(g *globals) *cobra.Command {
	var out, pub, desc string
	var group bool
	var roles, colls, memberOf []string
	cmd := &cobra.Command{
		Use:   "add NAME (--out FILE | --public-key KEY | --group)",
		Short: "Add an administrative user or group",
		Long: `Add an administrative user with its roles and collections, or a group (--group).

A user needs a key: --out FILE makes one here and writes the identity file
(seed, site and name; mode 0600; an existing file is never replaced), or
--public-key takes the public key (U...) of a seed made elsewhere with
'steward admins keygen'. NAME is letters, digits, '-' and '_'.

--role, --collection and --member-of may be repeated. Without --collection
the user acts on no client (it may still do what is site-wide in its roles,
such as reading status messages).`,
		Example: `  steward admins add alice --role "Remote Tools Operator" --collection Web --out alice.nk
  steward admins add carol --role "Read-only Analyst" --collection "All Systems" --out carol.nk
  steward admins add erin --role "Full Administrator" --collection "All Systems" --public-key UABC...
  steward admins add helpdesk --group --role Helpdesk --collection Web --description "first line"`,
		Args: oneName("administrator"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := contracts.AdminAddRequest{Name: args[0], Kind: contracts.AdminUser, Description: desc, Roles: roles, Collections: colls, MemberOf: memberOf}
			switch {
			case group && (out != "" || pub != ""):
				return errors.New("a group has no key: --group goes without --out and --public-key")
			case group:
				req.Kind = contracts.AdminGroup
			case out != "" && pub != "":
				return errors.New("give --out FILE (make a key here) or --public-key KEY (a key made elsewhere), not both")
			case out == "" && pub == "":
				return errors.New("a user needs a key: --out FILE to make one here, or --public-key KEY for one made with 'steward admins keygen'")
			case pub != "":
				if strings.HasPrefix(pub, "S") {
					return errors.New("--public-key: that is a seed, the secret half: keep it to yourself and give the public key (U...) that 'steward admins keygen' prints")
				}
				if !nkeys.IsValidPublicUserKey(pub) {
					return fmt.Errorf("--public-key %q is not a public user NKey (U...)", pub)
				}
				req.Key = pub
			}
			if err := contracts.ValidNewAdminName(req.Name); err != nil {
				return err
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				if out != "" {
					kp, err := nkeys.CreateUser()
					if err != nil {
						return err
					}
					seed, _ := kp.Seed()
					req.Key, _ = kp.PublicKey()
					// Written first (never over an existing file), removed
					// again if the site refuses: no operator without a seed.
					if err := client.WriteIdentity(out, client.Identity{Site: c.Site(), Operator: req.Name, CA: c.CA(), Seed: seed}); err != nil {
						return err
					}
					info, err := c.AdminsAdd(ctx, req)
					if err != nil {
						os.Remove(out)
						return err
					}
					fmt.Fprintf(g.stderr, "identity of %s written to %s (mode 0600): give it to %s, who runs: steward --identity %s ...\n", info.Name, out, info.Name, out)
					return g.print(info, func(w io.Writer) { adminDetail(w, info) })
				}
				info, err := c.AdminsAdd(ctx, req)
				if err != nil {
					return err
				}
				return g.print(info, func(w io.Writer) { adminDetail(w, info) })
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "make a key and write the identity file here (0600)")
	f.StringVar(&pub, "public-key", "", "public key (U...) of a seed made elsewhere")
	f.BoolVar(&group, "group", false, "add a group (roles and collections for its members), not a user")
	f.StringArrayVar(&roles, "role", nil, "security role (repeatable)")
	f.StringArrayVar(&colls, "collection", nil, `collection it may act on, by name or id; "All Systems" for every client (repeatable)`)
	f.StringArrayVar(&memberOf, "member-of", nil, "group the user joins (repeatable)")
	f.StringVar(&desc, "description", "", "what this administrator is for")
	return cmd
}

func newAdminsUpdateCmd(g *globals) *cobra.Command {
	var req contracts.AdminUpdateRequest
	var desc string
	cmd := &cobra.Command{
		Use:   "update NAME",
		Short: "Change an administrator's roles, collections, groups or description",
		Long: `Add and remove roles, collections and group memberships of an administrative
user or group. You may only give what you have, and only change someone whose
permissions and collections are within yours. A change that would leave the
site without a Full Administrator over All Systems is refused.`,
		Example: `  steward admins update alice --add-role Helpdesk --remove-role "Remote Tools Operator"
  steward admins update alice --add-collection Servers --remove-collection Web
  steward admins update bob --add-member-of helpdesk
  steward admins update helpdesk --description "first and second line"`,
		Args: oneName("administrator"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name = args[0]
			if cmd.Flags().Changed("description") {
				req.SetDescription, req.Description = true, desc
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				info, err := c.AdminsUpdate(ctx, req)
				if err != nil {
					return err
				}
				return g.print(info, func(w io.Writer) { adminDetail(w, info) })
			})
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&req.AddRoles, "add-role", nil, "give a role (repeatable)")
	f.StringArrayVar(&req.RemoveRoles, "remove-role", nil, "take a role (repeatable)")
	f.StringArrayVar(&req.AddCollections, "add-collection", nil, "give a collection (repeatable)")
	f.StringArrayVar(&req.RemoveCollections, "remove-collection", nil, "take a collection (repeatable)")
	f.StringArrayVar(&req.AddMemberOf, "add-member-of", nil, "join a group (repeatable)")
	f.StringArrayVar(&req.RemoveMemberOf, "remove-member-of", nil, "leave a group (repeatable)")
	f.StringVar(&desc, "description", "", "replace the description")
	return cmd
}

func newAdminsListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List administrative users and groups",
		Long: `List administrative users and groups with their own roles and collections.
With -o json each entry also has its effective roles, collections and
permissions (its own and its groups').`,
		Example: `  steward admins list
  steward admins list -o json | jq -r '.[] | select(.revoked) | .name'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				list, err := c.AdminsList(ctx)
				if err != nil {
					return err
				}
				return g.print(list, func(w io.Writer) {
					fmt.Fprintln(w, "NAME\tKIND\tSTATE\tROLES\tCOLLECTIONS\tGROUPS / MEMBERS")
					for _, a := range list {
						fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Name, a.Kind, adminState(a), dash(strings.Join(a.Roles, ", ")),
							dash(namedList(a.Collections)), dash(strings.Join(append(a.MemberOf, a.Members...), ", ")))
					}
				})
			})
		},
	}
}

func newAdminsShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show [NAME]",
		Short: "Show an administrator and what it may do (yourself without NAME)",
		Long: `Show an administrative user or group: its roles, collections and groups, and
what they add up to (effective roles, collections and permissions). Without
NAME it shows you: any operator may see itself.`,
		Example: `  steward admins show alice
  steward admins show            # who am I, and what may I do?`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				name := c.Operator()
				if len(args) == 1 {
					name = args[0]
				}
				info, err := c.AdminsShow(ctx, name)
				if err != nil {
					return err
				}
				return g.print(info, func(w io.Writer) { adminDetail(w, info) })
			})
		},
	}
}

func newAdminsRevokeCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a user: disconnect it and refuse it from now on",
		Long: `Revoke an administrative user. The site closes its connections within 2
seconds, refuses its reconnects, and every service refuses its requests. The
user stays listed, revoked, so you can see who it was; delete it to forget it.`,
		Example: `  steward admins revoke alice`,
		Args:    oneName("administrator"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				info, err := c.AdminsRevoke(ctx, args[0])
				if err != nil {
					return err
				}
				return g.print(info, func(w io.Writer) { fmt.Fprintf(w, "revoked %s\n", info.Name) })
			})
		},
	}
}

func newAdminsDeleteCmd(g *globals) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete NAME --yes",
		Short: "Delete an administrative user (and its key) or group",
		Long: `Delete an administrative user or group. A user's key is forgotten and its
connections closed; a group's members leave it. It cannot be undone, so the
command asks for --yes.`,
		Example: `  steward admins delete alice --yes`,
		Args:    oneName("administrator"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return fmt.Errorf("deleting %q cannot be undone: re-run with --yes to confirm", args[0])
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				info, err := c.AdminsDelete(ctx, args[0])
				if err != nil {
					return err
				}
				return g.print(info, func(w io.Writer) { fmt.Fprintf(w, "deleted %s %s\n", info.Kind, info.Name) })
			})
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm the deletion")
	return cmd
}

func newAdminsKeygenCmd(g *globals) *cobra.Command {
	var out, site, operator string
	cmd := &cobra.Command{
		Use:   "keygen --out FILE",
		Short: "Make an operator key here; print its public key",
		Long: `Make a new operator NKey on this machine, write the seed to FILE (mode 0600;
an existing file is never replaced) and print the public key on stdout. Give
the public key to a Full or Security Administrator, who runs
'steward admins add NAME --public-key KEY ...': the seed never leaves this
machine. --site and --operator are written into FILE so that
'steward --identity FILE' needs nothing else. This talks to no site.`,
		Example: `  steward admins keygen --out ~/.steward/erin.nk --site LAB --operator erin
  # then, on an administrator's machine:
  steward admins add erin --role "Full Administrator" --collection "All Systems" --public-key UABC...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out FILE is required: where to keep the seed")
			}
			if operator != "" {
				if err := contracts.ValidNewAdminName(operator); err != nil {
					return err
				}
			}
			kp, err := nkeys.CreateUser()
			if err != nil {
				return err
			}
			seed, _ := kp.Seed()
			if err := client.WriteIdentity(out, client.Identity{Site: site, Operator: operator, Seed: seed}); err != nil {
				return err
			}
			pub, _ := kp.PublicKey()
			if g.output == "json" {
				return g.print(map[string]string{"publicKey": pub, "file": out}, nil)
			}
			fmt.Fprintln(g.stdout, pub)
			fmt.Fprintf(g.stderr, "seed written to %s (mode 0600); give only the public key above to your administrator\n", out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "where to write the identity file (0600)")
	cmd.Flags().StringVar(&site, "site", "", "site code to record in the file")
	cmd.Flags().StringVar(&operator, "operator", "", "operator name to record in the file")
	return cmd
}

// oneName requires one non-empty NAME argument.
func oneName(noun string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 || args[0] == "" {
			return fmt.Errorf("%s needs one %s name, got %d arguments", cmd.CommandPath(), noun, len(args))
		}
		return nil
	}
}

func adminState(a contracts.AdminInfo) string {
	if a.Revoked {
		return "revoked"
	}
	return "active"
}

func namedList(cs []contracts.Named) string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return strings.Join(out, ", ")
}

// adminDetail writes one administrator as labelled lines.
func adminDetail(w io.Writer, a contracts.AdminInfo) {
	rows := [][2]string{
		{"Name", a.Name},
		{"Kind", a.Kind},
		{"State", adminState(a)},
		{"Description", dash(a.Description)},
		{"Key", dash(a.Key)},
		{"Roles", dash(strings.Join(a.Roles, ", "))},
		{"Collections", dash(namedList(a.Collections))},
	}
	if a.Kind == contracts.AdminGroup {
		rows = append(rows, [2]string{"Members", dash(strings.Join(a.Members, ", "))})
	} else {
		rows = append(rows, [2]string{"Groups", dash(strings.Join(a.MemberOf, ", "))})
	}
	rows = append(rows,
		[2]string{"Effective roles", dash(strings.Join(a.EffectiveRoles, ", "))},
		[2]string{"Effective collections", dash(namedList(a.EffectiveCollections))},
		[2]string{"Created", stamp(a.Created) + " by " + dash(a.CreatedBy)},
	)
	if !a.Updated.IsZero() {
		rows = append(rows, [2]string{"Updated", stamp(a.Updated) + " by " + dash(a.UpdatedBy)})
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%s:\t%s\n", r[0], r[1])
	}
	fmt.Fprintf(w, "Permissions:\t%s\n", dash(strings.Join(a.Permissions, " ")))
}
