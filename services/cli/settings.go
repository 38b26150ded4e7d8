package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
	"gopkg.in/yaml.v3"
)

// settingsHelp is the long help of `steward settings`.
const settingsHelp = `Client settings say how agents behave: remote tools, Remote Assistance and
the agent's own intervals. A settings object has a name and a priority and
configures some settings; deploy it to collections. Every client gets the
built-in "Default Client Settings" (priority 10000, the lowest) and every
settings object deployed to a collection it is in; per setting, the object
with the lowest priority that configures it wins. "steward clients policy"
shows a client's resultant policy: each setting, its value and the object
it came from.

The site signs each client's policy with its site key and pushes it to the
agent within a second of any change (settings, a deployment, a client
joining or leaving a collection); agents also fetch it at every connect and
every agent.policyRefresh, so one that was off catches up when it returns.
"steward settings compliance" shows which clients run their current policy.

A settings file (YAML; unknown keys and wrong types are refused with the
line). Leave a key out to not configure it:

  name: Lab remote tools
  priority: 10                # 1 to 9999, unique; lower wins
  description: remote tools for the lab
  remoteTools:
    enabled: true
    accessLevel: full         # full | view | none
    promptUser: true
    promptTimeout: 30s
    allowWhenNoUser: true     # no prompt when nobody is logged on
    showIndicator: true
    playSound: false
    permittedViewers: [alice, "group:helpdesk"]
    tunnelPorts: [5900, 3389, 22]
  remoteAssistance:
    manage: true              # the site writes the values below on the client
    overrideUserSettings: true
    unsolicited: true         # helpers may offer help
    solicited: true           # users may ask for help
    level: full               # full | view | none
    revertOnUnmanage: false   # false: values stay ("tattooed") when no longer managed
  agent:
    policyRefresh: 15m
    heartbeat: 60s
    inventory: 6h

Applying a file with name "Default Client Settings" changes the defaults
(what it leaves out keeps the built-in value).`

// newSettingsCmd is `steward settings`.
func newSettingsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "settings",
		Short: "Client settings: apply, deploy to collections, and see who complies",
		Long:  settingsHelp,
		Example: `  steward settings apply -f lab-remote-tools.yaml
  steward settings deploy "Lab remote tools" --collection Web
  steward clients policy web-01
  steward settings compliance "Lab remote tools" -o json`,
	}
	cmd.AddCommand(
		newSettingsApplyCmd(g),
		newSettingsListCmd(g),
		newSettingsShowCmd(g),
		newSettingsDeleteCmd(g),
		newSettingsDeployCmd(g, true),
		newSettingsDeployCmd(g, false),
		newSettingsComplianceCmd(g),
	)
	return cmd
}

// settingsArg requires the one settings object argument.
func settingsArg(cmd *cobra.Command, args []string) error {
	if len(args) != 1 || args[0] == "" {
		return fmt.Errorf("%s needs the name or id of one settings object, got %d arguments (quote names with spaces)", cmd.CommandPath(), len(args))
	}
	return nil
}

func newSettingsApplyCmd(g *globals) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or update a settings object from a file (declarative)",
		Long: `Create the settings object the file names, or replace its settings when one by
that name exists: what the file leaves out is not configured afterwards.
Applying the same file again changes nothing. Prints created, updated or
unchanged, and how many clients got a new policy. "-f -" reads standard input.

The file is checked before anything is sent: unknown keys, values of the
wrong type and values the settings do not allow are refused with the line.
The site refuses a priority another settings object has.

Limits: a settings object is at most 8 KiB as JSON (about 150 permitted
viewers of 50 characters; the check names the line of its largest setting),
and a site's settings objects and deployments together at most what its
server carries in one message (max_payload, 1 MiB by default: some 120
objects of the full 8 KiB). The site refuses a change past that (too
large): delete or shrink settings objects.`,
		Example: `  steward settings apply -f lab-remote-tools.yaml
  steward settings apply -f - <<'EOF'
  name: Helpdesk viewers
  priority: 20
  remoteTools:
    permittedViewers: ["group:helpdesk"]
  EOF`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("-f FILE is required (the settings file; - for standard input)")
			}
			in := cmd.InOrStdin()
			if file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			// Read once (bounded as ReadSettings bounds it) to say more
			// about an error than the YAML library does.
			data, err := io.ReadAll(io.LimitReader(in, client.MaxSettingsFile+1))
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			s, err := client.ReadSettings(bytes.NewReader(data))
			if err != nil {
				return fmt.Errorf("%s: %w", file, withTabHint(data, withPriorityRequired(data, err)))
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				resp, err := c.SettingsApply(ctx, s)
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) {
					fmt.Fprintf(w, "%s %q (priority %d, id %s)", resp.Result, resp.Settings.Name, resp.Settings.Priority, resp.Settings.ID)
					if resp.Result != contracts.ApplyUnchanged {
						fmt.Fprintf(w, ": %s got a new policy", plural(resp.Clients, "client"))
					}
					fmt.Fprintln(w)
				})
			})
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the settings file (YAML); - reads standard input")
	return cmd
}

// withTabHint adds to a YAML syntax error caused by a tab (the YAML
// library says "found character that cannot start any token") that YAML
// indents with spaces, and the first line with a tab.
func withTabHint(data []byte, err error) error {
	if !strings.Contains(err.Error(), "cannot start any token") {
		return err
	}
	for i, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, "\t") {
			return fmt.Errorf("%w (line %d has a tab: YAML indents with spaces, not tabs)", err, i+1)
		}
	}
	return err
}

// withPriorityRequired says that a file without a priority needs one: the
// check reads the missing priority as 0 ("priority: 0: must be 1 to
// 9999").
func withPriorityRequired(data []byte, err error) error {
	if !strings.Contains(err.Error(), "priority: 0: ") {
		return err
	}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return err
	}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "priority" {
			return err // there, and 0
		}
	}
	return fmt.Errorf("priority: required, and the file has none: give it a priority of %d to %d that no other settings object has (lower wins; the %s are %d)",
		contracts.MinSettingsPriority, contracts.MaxSettingsPriority, contracts.DefaultSettingsName, contracts.DefaultSettingsPriority)
}

func newSettingsListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List settings objects by priority",
		Long: `List every settings object, by priority (lowest, which wins, first), the
Default Client Settings last, with the collections each is deployed to.
With -o json: an array of settings objects, settings included.`,
		Example: `  steward settings list
  steward settings list -o json | jq -r '.[] | "\(.priority) \(.name)"'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				list, err := c.SettingsList(ctx)
				if err != nil {
					return err
				}
				return g.print(list, func(w io.Writer) {
					fmt.Fprintln(w, "PRIORITY\tNAME\tDEPLOYED TO\tSECTIONS\tUPDATED")
					for _, s := range list {
						deployed := "-"
						if s.BuiltIn {
							deployed = "(every client)"
						} else if len(s.Deployments) > 0 {
							var names []string
							for _, d := range s.Deployments {
								names = append(names, d.Collection.Name)
							}
							deployed = strings.Join(names, ", ")
						}
						updated := s.Updated
						if updated.IsZero() {
							updated = s.Created
						}
						fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", s.Priority, s.Name, deployed, sections(s.SettingsSections), ago(updated))
					}
				})
			})
		},
	}
}

// sections names the configured sections with how many settings each sets.
func sections(s contracts.SettingsSections) string {
	counts := map[string]int{}
	var order []string
	for path, v := range s.Values() {
		sec, _, _ := strings.Cut(path, ".")
		if v != nil {
			if counts[sec] == 0 {
				order = append(order, sec)
			}
			counts[sec]++
		}
	}
	if len(order) == 0 {
		return "-"
	}
	var out []string
	for _, sec := range []string{"remoteTools", "remoteAssistance", "agent"} {
		if n := counts[sec]; n > 0 {
			out = append(out, fmt.Sprintf("%s(%d)", sec, n))
		}
	}
	return strings.Join(out, " ")
}

func newSettingsShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show SETTINGS",
		Short: "Show one settings object: its settings and deployments",
		Long:  `Show a settings object (by name or ID): every setting it configures, and the collections it is deployed to.`,
		Example: `  steward settings show "Lab remote tools"
  steward settings show "Default Client Settings" -o json`,
		Args: settingsArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				s, err := c.SettingsShow(ctx, args[0])
				if err != nil {
					return err
				}
				return g.print(s, func(w io.Writer) { settingsDetail(w, s) })
			})
		},
	}
}

// settingsDetail writes one settings object.
func settingsDetail(w io.Writer, s contracts.SettingsInfo) {
	fmt.Fprintf(w, "Name:\t%s\n", s.Name)
	fmt.Fprintf(w, "ID:\t%s\n", s.ID)
	fmt.Fprintf(w, "Priority:\t%d\n", s.Priority)
	if s.Description != "" {
		fmt.Fprintf(w, "Description:\t%s\n", s.Description)
	}
	switch {
	case s.BuiltIn:
		fmt.Fprintf(w, "Deployed to:\tevery client (built in)\n")
	case len(s.Deployments) == 0:
		fmt.Fprintf(w, "Deployed to:\tnothing yet (steward settings deploy)\n")
	}
	for _, d := range s.Deployments {
		fmt.Fprintf(w, "Deployed to:\t%s (%s), by %s %s\n", d.Collection.Name, d.Collection.ID, d.By, ago(d.At))
	}
	fmt.Fprintf(w, "Updated:\t%s by %s (revision %d)\n", stampOr(s.Updated, s.Created), dash(firstNonEmpty(s.UpdatedBy, s.CreatedBy)), s.Revision)
	vals := s.Values()
	fmt.Fprintln(w, "SETTING\tVALUE")
	for _, path := range contracts.SettingPaths() {
		if v := vals[path]; v != nil {
			fmt.Fprintf(w, "%s\t%s\n", path, v)
		}
	}
}

func stampOr(t, or time.Time) string {
	if t.IsZero() {
		t = or
	}
	return stamp(t)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func newSettingsDeleteCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "delete SETTINGS",
		Short: "Delete a settings object",
		Long: `Delete a settings object. One that is deployed is refused, naming its
collections: undeploy it first, or pass --force to undeploy it everywhere
and delete it. Its clients get a new policy without it at once. The Default
Client Settings cannot be deleted.`,
		Example: `  steward settings delete "Lab remote tools"
  steward settings delete "Lab remote tools" --force`,
		Args: settingsArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				resp, err := c.SettingsDelete(ctx, args[0], force)
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) {
					fmt.Fprintf(w, "deleted %q (%s): %s got a new policy\n", resp.Settings.Name, resp.Settings.ID, plural(resp.Clients, "client"))
				})
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "delete a deployed settings object, undeploying it everywhere")
	return cmd
}

func newSettingsDeployCmd(g *globals, deploy bool) *cobra.Command {
	var coll string
	cmd := &cobra.Command{
		Use:   "deploy SETTINGS --collection COLLECTION",
		Short: "Deploy a settings object to a collection",
		Long: `Deploy a settings object to a collection: every member gets its settings (by
priority with the others it has), now and whenever a client joins; a
client that leaves the collection loses them. Needs Collection:DeploySettings
on the collection. An unknown collection is refused.`,
		Example: `  steward settings deploy "Lab remote tools" --collection Web
  steward settings deploy "Lab remote tools" --collection "All Systems"`,
		Args: settingsArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if coll == "" {
				return fmt.Errorf("--collection is required")
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				call := c.SettingsDeploy
				if !deploy {
					call = c.SettingsUndeploy
				}
				resp, err := call(ctx, args[0], coll)
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) {
					verb := map[bool]string{true: "to", false: "from"}[deploy]
					fmt.Fprintf(w, "%s %q %s %q (%s): %s got a new policy\n", resp.Result, resp.Settings.Name, verb,
						resp.Collection.Name, plural(resp.Members, "member"), plural(resp.Clients, "client"))
				})
			})
		},
	}
	if !deploy {
		cmd.Use = "undeploy SETTINGS --collection COLLECTION"
		cmd.Short = "Remove a settings object's deployment to a collection"
		cmd.Long = `Remove a settings object's deployment to a collection: its members get a
new policy without it at once. The collection is the one discovery knows by
that name or ID now (after a rename, by its new name); only a collection
deleted since is found by the name or ID its deployment recorded. One the
settings object is not deployed to is refused (not found), naming the
collections it is deployed to. Remote Assistance values it managed stay in
force on the clients, shown as tattooed, unless it set revertOnUnmanage
("steward-agent settings reset" returns them on a client).`
		cmd.Example = `  steward settings undeploy "Lab remote tools" --collection Web`
	}
	cmd.Flags().StringVar(&coll, "collection", "", "the collection, by name or ID (required)")
	return cmd
}

func newSettingsComplianceCmd(g *globals) *cobra.Command {
	var (
		state   string
		summary bool
	)
	cmd := &cobra.Command{
		Use:   "compliance SETTINGS",
		Short: "Show which clients of a settings object run their current policy",
		Long: `List the clients a settings object applies to (the members of its
collections; every client for the Default Client Settings), each in one state:

  applied   the client reported it runs its current policy revision
  pending   a newer revision waits for the client (offline, or on its way)
  failed    the client rejected its current revision (the reason is shown)
  unknown   the client has not reported a policy

With -o json: {"settings", "summary": {"applied", "pending", "failed",
"unknown"}, "clients": [...]}; --summary leaves the clients out (an answer
listing more than a few thousand clients does not fit in one message). The
exit code is 0 whatever the states.`,
		Example: `  steward settings compliance "Lab remote tools"
  steward settings compliance "Lab remote tools" --state pending
  steward settings compliance "Lab remote tools" --summary -o json | jq .summary`,
		Args: settingsArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			if state != "" && !contains(contracts.ComplianceStates(), state) {
				return fmt.Errorf("--state %q: must be one of %s", state, strings.Join(contracts.ComplianceStates(), ", "))
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				resp, err := c.SettingsCompliance(ctx, args[0], summary)
				if err != nil {
					return err
				}
				if state != "" {
					kept := resp.Clients[:0]
					for _, cc := range resp.Clients {
						if cc.State == state {
							kept = append(kept, cc)
						}
					}
					resp.Clients = kept
				}
				return g.print(resp, func(w io.Writer) {
					s := resp.Summary
					fmt.Fprintf(w, "%s:\t%d applied, %d pending, %d failed, %d unknown\n", resp.Settings.Name, s.Applied, s.Pending, s.Failed, s.Unknown)
					if summary {
						return
					}
					fmt.Fprintln(w)
					fmt.Fprintln(w, "CLIENT\tSTATE\tREVISION\tAPPLIED\tREPORTED\tREASON")
					for _, cc := range resp.Clients {
						fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%s\n", cc.Client.Name, cc.State, cc.Revision, cc.AppliedRevision, ago(cc.Reported), dash(cc.Reason))
					}
				})
			})
		},
	}
	cmd.Flags().StringVar(&state, "state", "", "only clients in this state: applied, pending, failed or unknown")
	cmd.Flags().BoolVar(&summary, "summary", false, "only the counts per state (for large collections)")
	return cmd
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
