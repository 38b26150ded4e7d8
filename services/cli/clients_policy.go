package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
)

// newClientsPolicyCmd is `steward clients policy`.
func newClientsPolicyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "policy REF",
		Short: "Show a client's resultant policy: each setting, its value and origin",
		Long: `Show the policy a client gets: every setting with its value and the settings
object it came from (the one with the lowest priority among the Default
Client Settings and the objects deployed to its collections), the policy
revision the site holds for it ("revision") and the one the client last
reported applied ("appliedRevision"). A setting nothing configures shows
null: the agent keeps its own value. REF is the client's name or ID.`,
		Example: `  steward clients policy web-01
  steward clients policy web-01 -o json | jq '.settings[] | select(.from.name != "Default Client Settings")'`,
		Args: refArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				p, err := c.ClientPolicy(ctx, args[0])
				if err != nil {
					return err
				}
				return g.print(p, func(w io.Writer) { policyDetail(w, p) })
			})
		},
	}
}

// policyDetail writes a resultant policy.
func policyDetail(w io.Writer, p contracts.ClientPolicyResponse) {
	fmt.Fprintf(w, "Client:\t%s (%s)\n", p.Client.Name, p.Client.ID)
	fmt.Fprintf(w, "Revision:\t%d (issued %s)\n", p.Revision, stamp(p.Issued))
	fmt.Fprintf(w, "Applied revision:\t%d (%s)\n", p.AppliedRevision, p.State)
	if p.Reason != "" {
		fmt.Fprintf(w, "Rejected because:\t%s\n", p.Reason)
	}
	var colls []string
	for _, c := range p.Collections {
		colls = append(colls, c.Name)
	}
	fmt.Fprintf(w, "Collections with settings:\t%s\n\n", dash(strings.Join(colls, ", ")))
	fmt.Fprintln(w, "SETTING\tVALUE\tFROM\tPRIORITY")
	for _, v := range p.Settings {
		from, prio := "(not configured)", "-"
		if v.From != nil {
			from, prio = v.From.Name, fmt.Sprint(v.Priority)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", v.Setting, compact(v.Value), from, prio)
	}
}

// compact writes a JSON value on one line.
func compact(v json.RawMessage) string {
	if len(v) == 0 {
		return "null"
	}
	var out bytes.Buffer
	if err := json.Compact(&out, v); err != nil {
		return string(v)
	}
	return out.String()
}
