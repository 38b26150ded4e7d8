package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
	"github.com/stewardhq/steward/services/rbac"
)

// newRolesCmd is `steward roles`: security roles.
func newRolesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "roles",
		Aliases: []string{"role"},
		Short:   "Security roles: sets of permissions on object types",
		Long: `A security role is a set of permissions, each an action on an object type
("Collection:RemoteControl", "EnrollmentToken:Create"); 'steward roles
permissions' lists them all. Permissions on Collection apply to the clients
in the administrator's collections; the others are site-wide.

The built-in roles are read-only: Full Administrator, Read-only Analyst,
Remote Tools Operator, Operations Administrator, Application Administrator,
Security Administrator. Make your own by copying one and adding or removing
permissions; a role may hold only permissions you hold yourself.`,
		Example: `  steward roles list
  steward roles show "Remote Tools Operator"
  steward roles copy "Remote Tools Operator" --name Helpdesk --add Collection:ViewInventory
  steward roles permissions`,
	}
	cmd.AddCommand(newRolesListCmd(g), newRolesShowCmd(g), newRolesCopyCmd(g), newRolesUpdateCmd(g), newRolesDeleteCmd(g), newRolesPermissionsCmd(g))
	return cmd
}

func newRolesListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List security roles",
		Long:  `List the security roles, built-in and custom, with their permissions.`,
		Example: `  steward roles list
  steward roles list -o json | jq -r '.[] | select(.builtIn | not) | .name'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				list, err := c.RolesList(ctx)
				if err != nil {
					return err
				}
				return g.print(list, func(w io.Writer) {
					fmt.Fprintln(w, "NAME\tTYPE\tPERMISSIONS\tGIVEN TO\tDESCRIPTION")
					for _, r := range list {
						kind := "custom"
						if r.BuiltIn {
							kind = "built-in"
						}
						fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", r.Name, kind, len(r.Permissions), dash(strings.Join(r.Admins, ", ")), r.Description)
					}
				})
			})
		},
	}
}

func newRolesShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "show NAME",
		Short:   "Show a role and its permissions",
		Example: `  steward roles show "Read-only Analyst"`,
		Args:    oneName("role"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				r, err := c.RolesShow(ctx, args[0])
				if err != nil {
					return err
				}
				return g.print(r, func(w io.Writer) { roleDetail(w, r) })
			})
		},
	}
}

func newRolesCopyCmd(g *globals) *cobra.Command {
	var req contracts.RoleCopyRequest
	cmd := &cobra.Command{
		Use:   "copy FROM --name NAME",
		Short: "Make a custom role from a copy of another",
		Long: `Copy the role FROM into a new custom role NAME, adding and removing
permissions (Object:Action, or Object:* for all of an object's actions; any
case). The new role may hold only permissions you hold yourself.`,
		Example: `  steward roles copy "Remote Tools Operator" --name Helpdesk --add Collection:ViewInventory
  steward roles copy "Read-only Analyst" --name Auditor --remove "Collection:*" --add Collection:Read`,
		Args: oneName("role"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.From = args[0]
			if req.Name == "" {
				return fmt.Errorf("--name NAME is required: the new role's name")
			}
			if err := checkPerms(req.Add, req.Remove); err != nil {
				return err
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				r, err := c.RolesCopy(ctx, req)
				if err != nil {
					return err
				}
				return g.print(r, func(w io.Writer) { roleDetail(w, r) })
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Name, "name", "", "the new role's name")
	f.StringVar(&req.Description, "description", "", "what the role is for")
	f.StringArrayVar(&req.Add, "add", nil, "permission to add, Object:Action or Object:* (repeatable)")
	f.StringArrayVar(&req.Remove, "remove", nil, "permission to remove (repeatable; removes come before adds)")
	return cmd
}

// checkPerms refuses unknown permissions before anything is sent, with
// the list of valid ones.
func checkPerms(lists ...[]string) error {
	for _, l := range lists {
		if _, err := rbac.ParsePermissions(l); err != nil {
			return err
		}
	}
	return nil
}

func newRolesUpdateCmd(g *globals) *cobra.Command {
	var req contracts.RoleUpdateRequest
	var desc string
	cmd := &cobra.Command{
		Use:   "update NAME",
		Short: "Change a custom role's permissions or description",
		Long: `Add and remove permissions of a custom role. Everyone given the role gets the
change at once. You may only add permissions you hold. Built-in roles cannot
be changed: copy them.`,
		Example: `  steward roles update Helpdesk --add StatusMessage:Read --remove Session:ViewRecording`,
		Args:    oneName("role"),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name = args[0]
			if cmd.Flags().Changed("description") {
				req.SetDescription, req.Description = true, desc
			}
			if err := checkPerms(req.Add, req.Remove); err != nil {
				return err
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				r, err := c.RolesUpdate(ctx, req)
				if err != nil {
					return err
				}
				return g.print(r, func(w io.Writer) { roleDetail(w, r) })
			})
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&req.Add, "add", nil, "permission to add, Object:Action or Object:* (repeatable)")
	f.StringArrayVar(&req.Remove, "remove", nil, "permission to remove (repeatable; removes come before adds)")
	f.StringVar(&desc, "description", "", "replace the description")
	return cmd
}

func newRolesDeleteCmd(g *globals) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:     "delete NAME --yes",
		Short:   "Delete a custom role that nobody holds",
		Example: `  steward roles delete Helpdesk --yes`,
		Args:    oneName("role"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return fmt.Errorf("deleting role %q cannot be undone: re-run with --yes to confirm", args[0])
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				r, err := c.RolesDelete(ctx, args[0])
				if err != nil {
					return err
				}
				return g.print(r, func(w io.Writer) { fmt.Fprintf(w, "deleted role %s\n", r.Name) })
			})
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm the deletion")
	return cmd
}

func newRolesPermissionsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "permissions",
		Short: "List every permission a role may hold (talks to no site)",
		Long: `List the object types and their actions. A permission is written
Object:Action; Object:* is every action of the object. Collection's
permissions apply to the clients in an administrator's collections; the
others are site-wide.`,
		Example: `  steward roles permissions
  steward roles permissions -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			type object struct {
				Object  string   `json:"object"`
				Scoped  bool     `json:"scoped"`
				Actions []string `json:"actions"`
			}
			var list []object
			for _, o := range rbac.Objects() {
				list = append(list, object{Object: o, Scoped: o == rbac.ObjCollection, Actions: rbac.Actions(o)})
			}
			return g.print(list, func(w io.Writer) {
				fmt.Fprintln(w, "OBJECT\tSCOPE\tACTIONS")
				for _, o := range list {
					scope := "site"
					if o.Scoped {
						scope = "collections"
					}
					fmt.Fprintf(w, "%s\t%s\t%s\n", o.Object, scope, strings.Join(o.Actions, ", "))
				}
			})
		},
	}
}

// roleDetail writes one role as labelled lines, its permissions grouped by
// object.
func roleDetail(w io.Writer, r contracts.RoleInfo) {
	kind := "custom"
	if r.BuiltIn {
		kind = "built-in"
	}
	fmt.Fprintf(w, "Name:\t%s\nType:\t%s\nDescription:\t%s\n", r.Name, kind, dash(r.Description))
	if r.CopiedFrom != "" {
		fmt.Fprintf(w, "Copied from:\t%s\n", r.CopiedFrom)
	}
	if !r.Created.IsZero() {
		fmt.Fprintf(w, "Created:\t%s by %s\n", stamp(r.Created), dash(r.CreatedBy))
	}
	if !r.Updated.IsZero() {
		fmt.Fprintf(w, "Updated:\t%s by %s\n", stamp(r.Updated), dash(r.UpdatedBy))
	}
	fmt.Fprintf(w, "Given to:\t%s\n", dash(strings.Join(r.Admins, ", ")))
	byObject := map[string][]string{}
	for _, p := range r.Permissions {
		byObject[rbac.Permission(p).Object()] = append(byObject[rbac.Permission(p).Object()], rbac.Permission(p).Action())
	}
	fmt.Fprintln(w, "Permissions:")
	for _, o := range rbac.Objects() {
		if acts := byObject[o]; len(acts) > 0 {
			fmt.Fprintf(w, "  %s:\t%s\n", o, strings.Join(acts, ", "))
		}
	}
}
