package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
)

// newStatusCmd is `steward status`: status messages, their catalog, the
// component and client summaries, and the status filter rules.
func newStatusCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Status messages: list, show, follow, catalog, component status, filter rules",
		Long: `Every part of Steward reports what it does as status messages: the agents
(through their outbox, so nothing is lost while they are offline) and the
site's services. A message has a numeric ID from the catalog (steward status
catalog), a severity (info, warning, error), a component, a source (a client
ID, or the site code for the site's services), the time it happened, a text
rendered from its insertion strings, and those strings as properties.
Security actions (enrollment, approvals, blocks, administrator and role
changes, remote sessions...) are audit messages.

The site keeps them for 30 days (by default), summarises them per
component (OK, warning, critical by thresholds, as Configuration Manager's
component status) and per client, and runs the status filter rules on each.`,
		Example: `  steward status list --since 1h --severity error
  steward status follow --component sessions
  steward status components
  steward status rules add --name page-despooler --match 'severity == "error" && component == "despooler"' --action exec --command '/usr/local/bin/page {{.ID}}'`,
	}
	cmd.AddCommand(
		newStatusListCmd(g),
		newStatusShowCmd(g),
		newStatusFollowCmd(g),
		newStatusCatalogCmd(g),
		newStatusComponentsCmd(g),
		newStatusClientsCmd(g),
		newStatusRulesCmd(g),
	)
	return cmd
}

// statusFilterFlags are the filter flags list, follow and rules test share.
type statusFilterFlags struct {
	since      string
	until      string
	severities []string
	components []string
	clients    []string
	sources    []string
	ids        []int
	audit      bool
}

// add adds the flags; withTime adds --since (default since) and --until.
func (f *statusFilterFlags) add(cmd *cobra.Command, withTime bool, since string) {
	fl := cmd.Flags()
	if withTime {
		fl.StringVar(&f.since, "since", since, "messages that happened since this long ago (30m, 1h, 2d, 1w) or this time (RFC 3339 or 2006-01-02)")
		fl.StringVar(&f.until, "until", "", "messages that happened before this long ago or this time")
	}
	fl.StringSliceVar(&f.severities, "severity", nil, "only these severities: info, warning, error (repeat or comma-separate)")
	fl.StringSliceVar(&f.components, "component", nil, "only these components: "+strings.Join(contracts.Components(), ", "))
	fl.StringSliceVar(&f.clients, "client", nil, "only messages from these clients (name or ID)")
	fl.StringSliceVar(&f.sources, "source", nil, "only messages from these sources (a client ID, or the site code for the site's services)")
	fl.IntSliceVar(&f.ids, "id", nil, "only these message IDs (see 'steward status catalog')")
	fl.BoolVar(&f.audit, "audit", false, "only audit messages (security actions)")
}

// filter builds the wire filter, resolving client names to IDs.
func (f *statusFilterFlags) filter(ctx context.Context, c *client.Client, now time.Time) (contracts.StatusFilter, error) {
	out := contracts.StatusFilter{
		Severities: f.severities, Components: f.components, Sources: f.sources, MsgIDs: f.ids, AuditOnly: f.audit,
	}
	for _, comp := range f.components {
		if !slices.Contains(contracts.Components(), comp) {
			return out, fmt.Errorf("--component %q: want one of %s", comp, strings.Join(contracts.Components(), ", "))
		}
	}
	var err error
	if out.Since, err = parseStatusTime(f.since, now); err != nil {
		return out, fmt.Errorf("--since: %w", err)
	}
	if out.Until, err = parseStatusTime(f.until, now); err != nil {
		return out, fmt.Errorf("--until: %w", err)
	}
	for _, ref := range f.clients {
		id, err := resolveClient(ctx, c, ref)
		if err != nil {
			return out, err
		}
		out.Clients = append(out.Clients, id)
	}
	if err := out.Validate(); err != nil {
		return out, err
	}
	return out, nil
}

// resolveClient turns a client name into its ID (asking the site's
// discovery service); an ID is taken as it is.
func resolveClient(ctx context.Context, c *client.Client, ref string) (string, error) {
	if _, err := uuid.Parse(ref); err == nil {
		return ref, nil
	}
	cl, err := c.ClientsShow(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("--client %s: %w (a deleted client's messages can still be listed by its ID)", ref, err)
	}
	return cl.ID, nil
}

// parseStatusTime reads a time flag (status's --since and --until,
// inventory history's --since): "" (none), a duration back from now (Go's
// units plus d for days and w for weeks), an RFC 3339 time or a date.
func parseStatusTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := parseAge(s); err == nil {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, time.Local); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an age (30m, 1h, 2d, 1w) nor a time (RFC 3339: 2006-01-02T15:04:05Z07:00, or a date: 2006-01-02)", s)
}

// parseAge is time.ParseDuration with d (24h) and w (7d) as well.
func parseAge(s string) (time.Duration, error) {
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"d", 24 * time.Hour}, {"w", 7 * 24 * time.Hour}} {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(n, 64)
			if err != nil || v < 0 {
				return 0, fmt.Errorf("bad age %q", s)
			}
			return time.Duration(v * float64(u.unit)), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad age %q", s)
	}
	return d, nil
}

func newStatusListCmd(g *globals) *cobra.Command {
	var f statusFilterFlags
	var limit int
	var after string
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List stored status messages, oldest first",
		Long: `List the stored status messages that match the filters, oldest first (in the
order the site received them), a page at a time. Times are when a message
happened at its source: an agent that was offline reports later, with the
time it happened.

A page holds at most --limit messages. When there are more, the command says
so on stderr with the cursor to pass to --after; --all fetches every page.
With -o json the output is a JSON array of messages.`,
		Example: `  steward status list                                  # the last hour
  steward status list --since 1h --severity error
  steward status list --since 1d --component sessions --audit
  steward status list --client web-01 --id 10001,10002 -o json
  steward status list --since 2026-11-01 --until 2026-11-02 --all -o json | jq length`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				filter, err := f.filter(ctx, c, time.Now())
				if err != nil {
					return err
				}
				msgs := []contracts.StatusMessage{}
				for {
					page, err := c.StatusList(ctx, contracts.StatusListRequest{Filter: filter, Limit: limit, After: after})
					if err != nil {
						return err
					}
					msgs = append(msgs, page.Messages...)
					after = page.Next
					if !all || after == "" {
						break
					}
				}
				if after != "" {
					fmt.Fprintf(g.stderr, "more messages match: add --after %s for the next page (or --all)\n", after)
				}
				var names map[string]string
				if g.output != "json" {
					names = clientNames(ctx, c)
				}
				return g.print(msgs, func(w io.Writer) { statusTable(w, msgs, names) })
			})
		},
	}
	f.add(cmd, true, "1h")
	cmd.Flags().IntVar(&limit, "limit", contracts.DefaultStatusLimit, fmt.Sprintf("messages per page (at most %d)", contracts.MaxStatusLimit))
	cmd.Flags().StringVar(&after, "after", "", "the cursor of the next page, as a previous list printed it")
	cmd.Flags().BoolVar(&all, "all", false, "fetch every page")
	return cmd
}

func newStatusShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show UUID",
		Short: "Show one status message with its properties",
		Example: `  steward status show 01a1fead-4285-71cc-b802-2773f7f0dda9
  steward status show 01a1fead-4285-71cc-b802-2773f7f0dda9 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				m, err := c.StatusShow(ctx, args[0])
				if err != nil {
					return err
				}
				return g.print(m, func(w io.Writer) { statusDetail(w, m) })
			})
		},
	}
}

func newStatusFollowCmd(g *globals) *cobra.Command {
	var f statusFilterFlags
	cmd := &cobra.Command{
		Use:   "follow",
		Short: "Print new status messages as they arrive (until Ctrl-C)",
		Long: `Follow the site's status messages live: each new message that matches the
filters is printed as it is stored. With -o json each message is one line of
JSON (newline-delimited), for jq or a log shipper.

The site sends the messages to this operator's own subjects only while the
follow is renewed (the command renews it every 10 seconds), so a follow
that is cut off simply ends.`,
		Example: `  steward status follow
  steward status follow --severity warning,error
  steward status follow --component sessions --audit -o json | jq -r .text`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			cctx, cancel := context.WithTimeout(ctx, g.timeout)
			c, err := g.connect(cctx)
			if err != nil {
				cancel()
				return explain(err)
			}
			defer c.Close()
			filter, err := f.filter(cctx, c, time.Now())
			cancel()
			if err != nil {
				return explain(err)
			}
			enc := json.NewEncoder(g.stdout)
			err = c.StatusFollow(ctx, filter, contracts.DefaultFollowTTL, func(m contracts.StatusMessage) error {
				if g.output == "json" {
					return enc.Encode(m)
				}
				_, err := fmt.Fprintln(g.stdout, statusLine(m))
				return err
			})
			return explain(err)
		},
	}
	f.add(cmd, false, "")
	return cmd
}

func newStatusCatalogCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "catalog",
		Short: "List every status message ID with its severity, component and text",
		Long: `List the site's status message catalog: every message ID, its severity, the
component that sends it, whether it is an audit message, and its text with
the insertion strings ({name}) its properties fill in. IDs are grouped by
component: 1-999 any component, admin 1000s, discovery 2000s, policy 3000s,
status 4000s, sessions 5000s, despooler 6000s, sender 7000s, agent 10000s.`,
		Example: `  steward status catalog
  steward status catalog -o json | jq '.[] | select(.audit)'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				cat, err := c.StatusCatalog(ctx)
				if err != nil {
					return err
				}
				return g.print(cat, func(w io.Writer) {
					fmt.Fprintln(w, "ID\tSEVERITY\tCOMPONENT\tAUDIT\tTEXT")
					for _, d := range cat {
						comp := d.Component
						if comp == contracts.ComponentAny {
							comp = "(any)"
						}
						fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", d.ID, d.Severity, comp, yesNo(d.Audit), d.Text)
					}
				})
			})
		},
	}
}

func newStatusComponentsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "components",
		Short: "Show each component's status: OK, warning or critical",
		Long: `Show each component's status, as Configuration Manager's component status:
the messages it sent within the site's window (1 hour by default), counted
by severity, against thresholds. By default one error makes a component
warning and five make it critical; ten warnings make it warning and fifty
critical; 2000 (5000) informational messages do too. The site's
configuration may change the window and thresholds, per component too.`,
		Example: `  steward status components
  steward status components -o json | jq -r '.components[] | select(.state != "ok") | .component'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				resp, err := c.StatusComponents(ctx)
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) {
					fmt.Fprintf(w, "Messages within the last %s:\n", time.Duration(resp.Window))
					fmt.Fprintln(w, "COMPONENT\tSTATUS\tERRORS\tWARNINGS\tINFO\tLAST\tREASON")
					for _, s := range resp.Components {
						fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%d\t%s\t%s\n", s.Component, strings.ToUpper(s.State), s.Error, s.Warning, s.Info, ago(s.Last), dash(s.Reason))
					}
				})
			})
		},
	}
}

func newStatusClientsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "clients [REF]",
		Short: "Show each client's last status message and counts",
		Long: `Show, for every client that sent status messages (or the one named by REF, a
name or an ID), the last message it sent and how many of each severity it
sent since the site began counting.`,
		Example: `  steward status clients
  steward status clients web-01 -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				id := ""
				if len(args) == 1 {
					var err error
					if id, err = resolveClient(ctx, c, args[0]); err != nil {
						return err
					}
				}
				sums, err := c.StatusClients(ctx, id)
				if err != nil {
					return err
				}
				var names map[string]string
				if g.output != "json" {
					names = clientNames(ctx, c)
				}
				return g.print(sums, func(w io.Writer) {
					fmt.Fprintln(w, "CLIENT\tLAST\tSEVERITY\tID\tERRORS\tWARNINGS\tINFO\tTEXT")
					for _, s := range sums {
						fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", cmp.Or(names[s.Client], s.Client), ago(s.Last.Time), s.Last.Severity, s.Last.MsgID, s.Error, s.Warning, s.Info, oneLine(s.Last.Text, 80))
					}
				})
			})
		},
	}
}

func newStatusRulesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Status filter rules: what the site does with each message",
		Long: `Status filter rules run, in order, on every stored status message. Each has a
match expression and an action:

  store     keep the message; later rules do not run
  discard   drop the message from the store (and from summaries); later
            rules do not run
            (store and discard never apply to audit messages: those are
            always kept, and the exec, webhook and forward rules run on
            them whatever store or discard rule comes first)
  exec      run a command (no shell: its words are the program and its
            arguments, each a Go template over the message, such as {{.ID}},
            {{.MsgID}}, {{.Severity}}, {{index .Properties "by"}}); the
            message is its stdin as JSON
  webhook   POST the message as JSON to a URL
  forward   send the message to the parent site (--subject parent): it is
            stored in the parent's status messages, marked as forwarded
            from this site (source: this site's code), once however often
            it is sent; without a parent site the action fails and is
            reported. Any other --subject is a literal subject a JetStream
            stream stores (on this site: JetStream never crosses the link),
            never the site's own status subjects nor a request space
            (steward.<site>.agent|op|site|svc|enroll|inbox.…)

Exec, webhook and forward run apart from intake, with a timeout (5s by
default), and are retried with backoff when they fail; every failure is
reported as a status message (4002, and 4003 when the rule gives up; at
most 60 a minute per rule after a burst of 100). When the queue of actions
waiting to run is full, an action is not queued, reported as 4003.
Adding or deleting a rule needs Site:Modify; an exec or webhook rule needs
a Full Administrator over All Systems (a command runs as the site's user).

Match expressions (expr-lang) see: id, uuid, severity, component, source,
client, instance, site, text, audit, unknown, properties (a map), time,
forwardedFrom (the child site that forwarded it; "" for this site's own).
They are a subset of expr that cannot exhaust the site's memory: the
predicates all, any, none, one, count, find (and findIndex, findLast,
findLastIndex), and len, type, abs, ceil, floor, round, int, float,
string (of a number, boolean or string), trim, trimPrefix, trimSuffix,
indexOf, lastIndexOf, hasPrefix, hasSuffix, keys, values, first, last,
get, now, duration, date; + on numbers, durations and times only; matches
with a constant pattern ('text matches "(?i)disk"' for any case); no
predicate inside another. A rule whose expression does not compile or
leaves the subset is refused, with the position.`,
		Example: `  steward status rules add --name page-despooler --match 'severity == "error" && component == "despooler"' --action exec --command '/usr/local/bin/page {{.ID}}'
  steward status rules add --name drop-noise --match 'id == 9001' --action discard
  steward status rules add --name to-chat --match 'audit' --action webhook --url http://127.0.0.1:9000/hook
  steward status rules add --name to-parent --match 'severity == "error"' --action forward --subject parent
  steward status rules list
  steward status rules test page-despooler --since 1d
  steward status rules delete drop-noise`,
	}
	cmd.AddCommand(newStatusRulesAddCmd(g), newStatusRulesListCmd(g), newStatusRulesDeleteCmd(g), newStatusRulesTestCmd(g))
	return cmd
}

func newStatusRulesAddCmd(g *globals) *cobra.Command {
	var r contracts.StatusRule
	var command, url, subject string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "add --name NAME --match EXPR --action ACTION [--command CMD | --url URL | --subject SUBJECT]",
		Short: "Add a status filter rule",
		Long: `Add a rule. It runs after the rules whose order is lower; without --order it
goes after the last rule. To change a rule, delete it and add it again.

A forward rule with --subject parent sends each matching message to this
site's parent site (steward serve --parent), which stores it as forwarded
from this site; any other --subject is a JetStream subject of this site.`,
		Example: `  steward status rules add --name page-despooler --match 'severity == "error" && component == "despooler"' --action exec --command '/usr/local/bin/page {{.ID}}'
  steward status rules add --name drop-noise --match 'id == 9001' --action discard --order 5
  steward status rules add --name to-chat --match 'audit' --action webhook --url http://127.0.0.1:9000/hook --timeout 10s
  steward status rules add --name to-parent --match 'severity != "info"' --action forward --subject parent
  steward status rules add --name to-archive --match 'audit' --action forward --subject steward.LAB.archive.status`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			targets := map[string]string{contracts.RuleExec: command, contracts.RuleWebhook: url, contracts.RuleForward: subject}
			flags := map[string]string{contracts.RuleExec: "--command", contracts.RuleWebhook: "--url", contracts.RuleForward: "--subject"}
			for action, v := range targets {
				if v != "" && action != r.Action {
					return fmt.Errorf("%s goes with --action %s, not %q", flags[action], action, r.Action)
				}
			}
			r.Target, r.Timeout = targets[r.Action], contracts.Duration(timeout)
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				got, err := c.StatusRulesAdd(ctx, r)
				if err != nil {
					return err
				}
				return g.print(got, func(w io.Writer) { rulesTable(w, []contracts.StatusRule{got}) })
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&r.Name, "name", "", "the rule's name: letters, digits, '-' and '_' (required)")
	fl.StringVar(&r.Match, "match", "", `the match expression, e.g. 'severity == "error" && component == "despooler"' (required)`)
	fl.StringVar(&r.Action, "action", "", "store, discard, exec, webhook or forward (required)")
	fl.StringVar(&command, "command", "", "exec: the command line; each word a template over the message")
	fl.StringVar(&url, "url", "", "webhook: the http(s) URL to POST the message to")
	fl.StringVar(&subject, "subject", "", "forward: parent (the parent site) or the subject to publish the message to")
	fl.DurationVar(&timeout, "timeout", 0, "how long one try of the action may take (default 5s, at most 1m)")
	fl.IntVar(&r.Order, "order", 0, "where the rule runs: lower first (default after the last rule)")
	fl.StringVar(&r.Description, "description", "", "what the rule is for")
	for _, name := range []string{"name", "match", "action"} {
		_ = cmd.MarkFlagRequired(name)
	}
	return cmd
}

func newStatusRulesListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the rules in the order they run",
		Example: "  steward status rules list\n  steward status rules list -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				rules, err := c.StatusRulesList(ctx)
				if err != nil {
					return err
				}
				return g.print(rules, func(w io.Writer) { rulesTable(w, rules) })
			})
		},
	}
}

func newStatusRulesDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME",
		Short:   "Delete a rule; its queued actions are dropped",
		Example: "  steward status rules delete drop-noise",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				r, err := c.StatusRulesDelete(ctx, args[0])
				if err != nil {
					return err
				}
				return g.print(r, func(w io.Writer) { fmt.Fprintf(w, "deleted rule %s\n", r.Name) })
			})
		},
	}
}

func newStatusRulesTestCmd(g *globals) *cobra.Command {
	var f statusFilterFlags
	var limit int
	cmd := &cobra.Command{
		Use:   "test NAME",
		Short: "Replay stored messages through a rule and show what it would have done",
		Long: `Replay the stored messages that match the filters (by default those of the
last day) through the rule NAME and show, for each it matches, what it would
have done: the exact command line, the URL it would POST to, the subject it
would forward to. Nothing is run, posted, forwarded or discarded. When an
earlier store or discard rule matches a message too, the rule would not in
fact have run on it; SHADOWED BY names that rule.`,
		Example: `  steward status rules test page-despooler --since 1d
  steward status rules test to-chat --since 1w --limit 20 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				filter, err := f.filter(ctx, c, time.Now())
				if err != nil {
					return err
				}
				resp, err := c.StatusRulesTest(ctx, contracts.StatusRuleTestRequest{Name: args[0], Filter: filter, Limit: limit})
				if err != nil {
					return err
				}
				return g.print(resp, func(w io.Writer) {
					more := ""
					if resp.Truncated {
						more = " (the replay stopped at its bound: narrow the filters)"
					}
					fmt.Fprintf(w, "rule %s (%s when %s): %d of %d stored messages match%s\n", resp.Rule.Name, resp.Rule.Action, resp.Rule.Match, resp.Matched, resp.Scanned, more)
					if len(resp.Results) == 0 {
						return
					}
					fmt.Fprintln(w, "TIME\tID\tSOURCE\tMESSAGE\tWOULD\tSHADOWED BY")
					for _, r := range resp.Results {
						m := r.Message
						fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", m.Time.Local().Format(time.DateTime), m.MsgID, m.Source, m.ID, r.Would, dash(r.ShadowedBy))
					}
					if resp.Matched > len(resp.Results) {
						fmt.Fprintf(w, "(%d more; raise --limit to see them)\n", resp.Matched-len(resp.Results))
					}
				})
			})
		},
	}
	f.add(cmd, true, "1d")
	cmd.Flags().IntVar(&limit, "limit", contracts.DefaultStatusLimit, "matches to show")
	return cmd
}

// statusTable writes messages as rows; a source that is a client is
// shown by its name when names has it.
func statusTable(w io.Writer, msgs []contracts.StatusMessage, names map[string]string) {
	fmt.Fprintln(w, "TIME\tSEVERITY\tID\tCOMPONENT\tSOURCE\tTEXT")
	for _, m := range msgs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Time.Local().Format(time.DateTime), m.Severity, statusID(m), m.Component, cmp.Or(names[m.Source], m.Source), statusText(m, 100))
	}
}

// clientNames maps the IDs of the clients the operator may see to their
// names, for tables (JSON keeps the IDs); nil when they cannot be listed.
func clientNames(ctx context.Context, c *client.Client) map[string]string {
	list, err := c.ClientsList(ctx, "")
	if err != nil {
		return nil
	}
	out := make(map[string]string, len(list))
	for _, cl := range list {
		out[cl.ID] = cl.Name
	}
	return out
}

// statusLine is one message on one line, for follow.
func statusLine(m contracts.StatusMessage) string {
	return fmt.Sprintf("%s  %-7s  %-6s  %-9s  %s  %s", m.Time.Local().Format(time.DateTime), m.Severity, statusID(m), m.Component, m.Source, statusText(m, 0))
}

// statusID is the message ID, marked "?" when the site's catalog lacks it.
func statusID(m contracts.StatusMessage) string {
	if m.Unknown {
		return strconv.Itoa(m.MsgID) + "?"
	}
	return strconv.Itoa(m.MsgID)
}

// statusText is the text, marked as audit, on one line of at most n runes
// (0: no limit).
func statusText(m contracts.StatusMessage, n int) string {
	t := m.Text
	if m.Audit {
		t = "[audit] " + t
	}
	return oneLine(t, n)
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); n > 0 && len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// statusDetail writes one message as labelled lines.
func statusDetail(w io.Writer, m contracts.StatusMessage) {
	rows := [][2]string{
		{"UUID", m.ID},
		{"ID", statusID(m)},
		{"Severity", m.Severity},
		{"Component", m.Component},
		{"Audit", yesNo(m.Audit)},
		{"Time", stamp(m.Time)},
		{"Received", stamp(m.Received)},
		{"Site", dash(m.Site)},
		{"Source", dash(m.Source)},
		{"Client", dash(m.Client)},
		{"Instance", dash(m.Instance)},
		{"Trace", dash(m.TraceID)},
		{"Text", m.Text},
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%s:\t%s\n", r[0], r[1])
	}
	if len(m.Properties) > 0 {
		fmt.Fprintln(w, "Properties:\t")
		for _, k := range slices.Sorted(maps.Keys(m.Properties)) {
			fmt.Fprintf(w, "  %s:\t%s\n", k, m.Properties[k])
		}
	}
}

// rulesTable writes rules as rows.
func rulesTable(w io.Writer, rules []contracts.StatusRule) {
	fmt.Fprintln(w, "ORDER\tNAME\tACTION\tMATCH\tTARGET\tBY")
	for _, r := range rules {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", r.Order, r.Name, r.Action, r.Match, dash(r.Target), dash(r.By))
	}
}
