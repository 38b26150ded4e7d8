package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
)

// collectionsHelp is the long help of `steward collections`.
const collectionsHelp = `A collection is a set of clients that settings, deployments and permissions
target. Its members are

  limit ∩ (query matches ∪ included collections ∪ direct members) − excluded collections

  --limit      the collection it is drawn from (default "All Systems")
  --query      an Expr expression over a client's inventory; repeat for more
               rules (a client matching any one is in)
  --include    another collection whose members are in too
  --exclude    another collection whose members are kept out
  direct       clients named one by one: steward collections add

"All Systems" is built in and holds every approved client. The site keeps
every membership current: when a client's inventory or record changes, it
re-evaluates only the collections that client can enter or leave, within a
second. A query is compiled when saved: one that does not compile or names
an unknown field is refused with the line and column of the error.

Query fields (the discovery README has them all, with examples):
  id name site arch
  os.name os.version os.family os.kernel    cpu.model cpu.cores    memory.total
  disks[].device .mount .fsType .total .free                       (bytes)
  ips macs users admins                      (lists of strings)
  software[].name .version .source           labels (map: labels.role)
  helpers: inSubnet(ip, "10.1.0.0/16")  versionCompare(a, b) (-1, 0, 1)

Collections and clients are named by name or ID (an ID when a name is
ambiguous).`

// newCollectionsCmd is `steward collections`.
func newCollectionsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "collections",
		Aliases: []string{"collection"},
		Short:   "Group clients by queries, rules and direct membership",
		Long:    collectionsHelp,
		Example: `  steward collections create "Linux web" --query 'os.family == "linux" && name startsWith "web-"'
  steward collections preview --query 'any(software, .name == "openssl" && versionCompare(.version, "3.0.13") < 0)'
  steward collections create Pilot
  steward collections add Pilot db-01 web-07
  steward collections update Pilot --include "Linux web" --exclude Servers
  steward collections members "Linux web" -o json`,
	}
	cmd.AddCommand(
		newCollectionsListCmd(g),
		newCollectionsShowCmd(g),
		newCollectionsMembersCmd(g),
		newCollectionsPreviewCmd(g),
		newCollectionsCreateCmd(g),
		newCollectionsUpdateCmd(g),
		newCollectionsAddCmd(g),
		newCollectionsRemoveCmd(g),
		newCollectionsDeleteCmd(g),
	)
	return cmd
}

// ruleFlags are the rule flags of create and preview.
type ruleFlags struct {
	limit            string
	queries          []string
	include, exclude []string
	members          []string
}

func (f *ruleFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.limit, "limit", "", `limiting collection: members are drawn from it (default "All Systems")`)
	fl.StringArrayVar(&f.queries, "query", nil, "query rule, an Expr expression (repeatable: a client matching any is in)")
	fl.StringArrayVar(&f.include, "include", nil, "include the members of this collection (repeatable)")
	fl.StringArrayVar(&f.exclude, "exclude", nil, "exclude the members of this collection (repeatable)")
	fl.StringArrayVar(&f.members, "member", nil, "a client, by name or ID, as a direct member (repeatable)")
}

func newCollectionsCreateCmd(g *globals) *cobra.Command {
	var f ruleFlags
	var description string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a collection",
		Long: `Create a collection from query, include and exclude rules and direct members,
limited by another collection (default "All Systems"). A collection without
rules is empty until you add members (steward collections add). Names are
unique, case-insensitively. Try the rules with steward collections preview
first.`,
		Example: `  steward collections create "Linux web" --query 'os.family == "linux" && name startsWith "web-"'
  steward collections create "Big DB" --limit Servers --query 'memory.total >= 64 * 1024 * 1024 * 1024'
  steward collections create Pilot --member db-01 --member web-07
  steward collections create "Web not pilot" --include "Linux web" --exclude Pilot`,
		Args: nameArg("create"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				info, err := c.CollectionsCreate(ctx, contracts.CollectionCreateRequest{
					Name: args[0], Description: description, Limit: f.limit,
					Queries: f.queries, Include: f.include, Exclude: f.exclude, Direct: f.members,
				})
				if err != nil {
					return pointAtQuery(err, f.queries)
				}
				return g.print(info, func(w io.Writer) { collectionDetail(w, info) })
			})
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&description, "description", "", "what the collection is for")
	return cmd
}

func newCollectionsPreviewCmd(g *globals) *cobra.Command {
	var f ruleFlags
	var most int
	cmd := &cobra.Command{
		Use:   "preview",
		Short: "Show who a collection with these rules would hold, before creating it",
		Long: `Evaluate rules as create would, without creating anything, and list the
clients they match. The query is checked as create checks it. With -o json
the output is a JSON array of {"id", "name"}.`,
		Example: `  steward collections preview --query 'os.family == "linux" && name startsWith "web-"'
  steward collections preview --query 'any(ips, inSubnet(#, "10.1.0.0/16"))' --exclude Servers
  steward collections preview --query '"root" in admins' -o json | jq length`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				total, members, err := c.CollectionsPreview(ctx, contracts.CollectionPreviewRequest{
					Limit: f.limit, Queries: f.queries, Include: f.include, Exclude: f.exclude, Direct: f.members, Max: most,
				})
				if err != nil {
					return pointAtQuery(err, f.queries)
				}
				if total > len(members) {
					fmt.Fprintf(g.stderr, "%d clients match; the first %d are listed\n", total, len(members))
				}
				return g.print(members, func(w io.Writer) {
					membersTable(w, members)
					if total == 1 {
						fmt.Fprintln(w, "\n1 client")
					} else {
						fmt.Fprintf(w, "\n%d clients\n", total)
					}
				})
			})
		},
	}
	f.add(cmd)
	cmd.Flags().IntVar(&most, "max", 0, fmt.Sprintf("list at most this many (default and at most %d)", contracts.MaxMembersPage))
	return cmd
}

func newCollectionsUpdateCmd(g *globals) *cobra.Command {
	var (
		name, description, limit       string
		queries                        []string
		clearQueries                   bool
		include, exclude, unInc, unExc []string
		addMembers, removeMembers      []string
		revision                       uint64
	)
	cmd := &cobra.Command{
		Use:   "update COLLECTION",
		Short: "Change a collection's name, limit or rules",
		Long: `Change a collection. Only what you pass changes:

  --name, --description, --limit   replace
  --query                          replaces ALL query rules with the ones given
  --clear-queries                  removes every query rule
  --include, --exclude             add an include or exclude rule
  --remove-include, --remove-exclude  remove one
  --add-member, --remove-member    direct members (as collections add/remove)

The site checks the result as create does: queries compile, no cycles, a
collection cannot limit, include or exclude itself. --revision makes the
update fail if someone changed the collection since you read it.`,
		Example: `  steward collections update Pilot --include "Linux web" --exclude Servers
  steward collections update "Linux web" --query 'os.family == "linux"' --query 'name startsWith "www-"'
  steward collections update Pilot --name "Pilot ring 1" --limit "Linux web"`,
		Args: nameArg("update"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if clearQueries && len(queries) > 0 {
				return fmt.Errorf("--clear-queries and --query: pass one")
			}
			req := contracts.CollectionUpdateRequest{
				Ref: args[0], Revision: revision, Name: name, Description: description, Limit: limit,
				SetQueries: clearQueries || len(queries) > 0, Queries: queries,
				AddInclude: include, DelInclude: unInc, AddExclude: exclude, DelExclude: unExc,
				AddDirect: addMembers, DelDirect: removeMembers,
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				info, err := c.CollectionsUpdate(ctx, req)
				if err != nil {
					return pointAtQuery(err, queries)
				}
				return g.print(info, func(w io.Writer) { collectionDetail(w, info) })
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&name, "name", "", "rename the collection")
	fl.StringVar(&description, "description", "", "replace the description")
	fl.StringVar(&limit, "limit", "", "replace the limiting collection")
	fl.StringArrayVar(&queries, "query", nil, "replace the query rules with these (repeatable)")
	fl.BoolVar(&clearQueries, "clear-queries", false, "remove every query rule")
	fl.StringArrayVar(&include, "include", nil, "add an include rule (repeatable)")
	fl.StringArrayVar(&exclude, "exclude", nil, "add an exclude rule (repeatable)")
	fl.StringArrayVar(&unInc, "remove-include", nil, "remove an include rule (repeatable)")
	fl.StringArrayVar(&unExc, "remove-exclude", nil, "remove an exclude rule (repeatable)")
	fl.StringArrayVar(&addMembers, "add-member", nil, "add a direct member (repeatable)")
	fl.StringArrayVar(&removeMembers, "remove-member", nil, "remove a direct member (repeatable)")
	fl.Uint64Var(&revision, "revision", 0, "fail unless the collection is still at this revision (see show)")
	return cmd
}

func newCollectionsAddCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "add COLLECTION CLIENT...",
		Short: "Add clients to a collection as direct members",
		Long: `Make clients direct members of a collection. A direct member is in the
collection as long as it is in the limiting collection and not excluded,
whatever the queries say. Clients are named by name or ID.`,
		Example: `  steward collections add Pilot db-01
  steward collections add Pilot web-07 web-08`,
		Args: membersArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				info, err := c.CollectionsAdd(ctx, args[0], args[1:]...)
				if err != nil {
					return err
				}
				return g.print(info, func(w io.Writer) { collectionDetail(w, info) })
			})
		},
	}
}

func newCollectionsRemoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "remove COLLECTION CLIENT...",
		Short: "Remove direct members from a collection",
		Long: `Remove direct members from a collection. A client that its queries or
include rules match stays a member: to keep it out, exclude a collection
that holds it.`,
		Example: `  steward collections remove Pilot db-01`,
		Args:    membersArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				info, err := c.CollectionsRemove(ctx, args[0], args[1:]...)
				if err != nil {
					return err
				}
				return g.print(info, func(w io.Writer) { collectionDetail(w, info) })
			})
		},
	}
}

func newCollectionsMembersCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "members COLLECTION",
		Short: "List the members of a collection",
		Long: `List the clients in a collection, sorted by name. With -o json the output is
a JSON array of {"id", "name"} ([] when empty).`,
		Example: `  steward collections members "Linux web"
  steward collections members "Linux web" -o json | jq -r '.[].name'`,
		Args: nameArg("list the members of"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				_, members, err := c.CollectionsMembers(ctx, args[0])
				if err != nil {
					return err
				}
				return g.print(members, func(w io.Writer) { membersTable(w, members) })
			})
		},
	}
}

func newCollectionsListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List collections",
		Long: `List every collection, All Systems first, with its member count and rules.
With -o json the output is a JSON array of collection objects.`,
		Example: `  steward collections list
  steward collections list -o json | jq -r '.[] | select(.error) | .name'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				list, err := c.CollectionsList(ctx)
				if err != nil {
					return err
				}
				return g.print(list, func(w io.Writer) { collectionsTable(w, list) })
			})
		},
	}
}

func newCollectionsShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show COLLECTION",
		Short: "Show a collection's rules and member count",
		Example: `  steward collections show "Linux web"
  steward collections show Pilot -o json`,
		Args: nameArg("show"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				info, err := c.CollectionsShow(ctx, args[0])
				if err != nil {
					return err
				}
				return g.print(info, func(w io.Writer) { collectionDetail(w, info) })
			})
		},
	}
}

func newCollectionsDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete COLLECTION",
		Short: "Delete a collection",
		Long: `Delete a collection. A collection still in use cannot be deleted, and the
site names what uses it: other collections that limit on, include or exclude
it; settings or package versions deployed to it; administrative users and
groups that have it among their collections. Change, undeploy or delete
those first. All Systems is built in and cannot be deleted. Audited (2012).`,
		Example: `  steward collections delete "Old pilot"`,
		Args:    nameArg("delete"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				info, err := c.CollectionsDelete(ctx, args[0])
				if err != nil {
					return err
				}
				return g.print(info, func(w io.Writer) { fmt.Fprintf(w, "deleted collection %s (%s)\n", info.Name, info.ID) })
			})
		},
	}
}

// queryPos finds the position in the site's error for a query rule that
// does not compile: "query N: line L, column C: ...".
var queryPos = regexp.MustCompile(`query (\d+): line (\d+), column (\d+): `)

// pointAtQuery adds to the site's error for a query that does not compile
// the query's line with a caret under the column.
func pointAtQuery(err error, queries []string) error {
	var ce *contracts.Error
	if !errors.As(err, &ce) || ce.Code != contracts.CodeBadRequest {
		return err
	}
	m := queryPos.FindStringSubmatch(ce.Message)
	if m == nil {
		return err
	}
	n, _ := strconv.Atoi(m[1])
	line, _ := strconv.Atoi(m[2])
	col, _ := strconv.Atoi(m[3])
	if n < 1 || n > len(queries) {
		return err
	}
	lines := strings.Split(queries[n-1], "\n")
	if line < 1 || line > len(lines) || col < 1 || col > len([]rune(lines[line-1]))+1 {
		return err
	}
	return fmt.Errorf("%w\n  %s\n  %s^", err, lines[line-1], strings.Repeat(" ", col-1))
}

// nameArg requires the one COLLECTION argument.
func nameArg(verb string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 || args[0] == "" {
			return fmt.Errorf("%s needs the name or id of the collection to %s, got %d arguments (quote names with spaces)", cmd.CommandPath(), verb, len(args))
		}
		return nil
	}
}

// membersArgs requires a collection and at least one client.
func membersArgs(cmd *cobra.Command, args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("%s needs a collection and at least one client", cmd.CommandPath())
	}
	return nil
}

// membersTable writes clients as rows.
func membersTable(w io.Writer, members []contracts.Named) {
	fmt.Fprintln(w, "NAME\tID")
	for _, m := range members {
		fmt.Fprintf(w, "%s\t%s\n", dash(m.Name), m.ID)
	}
}

// collectionsTable writes collections as rows.
func collectionsTable(w io.Writer, list []contracts.CollectionInfo) {
	fmt.Fprintln(w, "NAME\tID\tMEMBERS\tLIMIT\tRULES")
	for _, c := range list {
		count := strconv.Itoa(c.MemberCount)
		if c.Error != "" {
			count = "error"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", c.Name, c.ID, count, dash(c.Limit.Name), rulesSummary(c))
	}
}

// rulesSummary counts a collection's rules: "2 queries, 1 include".
func rulesSummary(c contracts.CollectionInfo) string {
	if c.BuiltIn {
		return "built in: every approved client"
	}
	var parts []string
	count := func(n int, one, many string) {
		switch {
		case n == 1:
			parts = append(parts, "1 "+one)
		case n > 1:
			parts = append(parts, strconv.Itoa(n)+" "+many)
		}
	}
	count(len(c.Queries), "query", "queries")
	count(len(c.Include), "include", "includes")
	count(len(c.Exclude), "exclude", "excludes")
	count(len(c.Direct), "direct member", "direct members")
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// collectionDetail writes one collection as labelled lines.
func collectionDetail(w io.Writer, c contracts.CollectionInfo) {
	names := func(l []contracts.Named) string {
		var out []string
		for _, n := range l {
			out = append(out, fmt.Sprintf("%s (%s)", dash(n.Name), n.ID))
		}
		return dash(strings.Join(out, ", "))
	}
	fmt.Fprintf(w, "Name:\t%s\n", c.Name)
	fmt.Fprintf(w, "ID:\t%s\n", c.ID)
	if c.Description != "" {
		fmt.Fprintf(w, "Description:\t%s\n", c.Description)
	}
	fmt.Fprintf(w, "Members:\t%d\n", c.MemberCount)
	if c.Error != "" {
		fmt.Fprintf(w, "Error:\t%s\n", c.Error)
	}
	if c.BuiltIn {
		fmt.Fprintf(w, "Rules:\tbuilt in: every approved client\n")
		return
	}
	fmt.Fprintf(w, "Limit:\t%s\n", names([]contracts.Named{c.Limit}))
	if len(c.Queries) == 0 {
		fmt.Fprintf(w, "Query:\t-\n")
	}
	for i, q := range c.Queries {
		fmt.Fprintf(w, "Query %d:\t%s\n", i+1, q)
	}
	fmt.Fprintf(w, "Include:\t%s\n", names(c.Include))
	fmt.Fprintf(w, "Exclude:\t%s\n", names(c.Exclude))
	fmt.Fprintf(w, "Direct:\t%s\n", names(c.Direct))
	fmt.Fprintf(w, "Created:\t%s by %s\n", stamp(c.Created), dash(c.CreatedBy))
	fmt.Fprintf(w, "Updated:\t%s by %s\n", stamp(c.Updated), dash(c.UpdatedBy))
	fmt.Fprintf(w, "Revision:\t%d\n", c.Revision)
}
