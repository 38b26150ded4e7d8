package cli

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
)

// newInventoryCmd is `steward inventory`: what the agents report of their
// machines.
func newInventoryCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inventory",
		Short: "Show a client's hardware and software, and what changed",
		Long: `Every agent reports its machine's inventory: operating system, CPU, memory,
disks, network interfaces, installed software, logged-on users, local
administrators and labels. It sends a full report first, then only the
sections that changed; the site keeps the current inventory and 90 days of
changes. Collections query these fields (see steward collections --help).

Commands that take REF accept a client's name or its ID.`,
		Example: `  steward inventory show web-01
  steward inventory show web-01 -o json | jq '.inventory.software | length'
  steward inventory history web-01 --since 168h
  steward inventory refresh web-01`,
	}
	cmd.AddCommand(newInventoryShowCmd(g), newInventoryHistoryCmd(g), newInventoryRefreshCmd(g))
	return cmd
}

// inventoryView is what `inventory show -o json` prints.
type inventoryView struct {
	Client    contracts.Client    `json:"client"`
	Seq       uint64              `json:"seq"`
	Collected time.Time           `json:"collected"`
	Received  time.Time           `json:"received"`
	Inventory contracts.Inventory `json:"inventory"`
}

func newInventoryShowCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "show REF",
		Short: "Show the hardware and software of a client",
		Long: `Show the current inventory of one client, as its agent last reported it.
REF is the client's name or ID. With -o json the whole inventory is printed,
field names as the collection queries use them.`,
		Example: `  steward inventory show web-01
  steward inventory show web-01 -o json | jq -r '.inventory.software[] | "\(.name) \(.version)"'`,
		Args: refArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				r, err := c.InventoryShow(ctx, args[0])
				if err != nil {
					return err
				}
				v := inventoryView{Client: r.Client, Seq: r.Seq, Collected: r.Collected, Received: r.Received, Inventory: r.Inventory}
				return g.print(v, func(w io.Writer) { inventoryDetail(w, v) })
			})
		},
	}
}

func newInventoryHistoryCmd(g *globals) *cobra.Command {
	var since string
	cmd := &cobra.Command{
		Use:   "history REF",
		Short: "List what changed in a client's inventory, and when",
		Long: `List the changes of one client's inventory, oldest first: packages added,
removed or upgraded, disks, interfaces, users and labels that came or went,
operating system and hardware that changed. The time is when the agent
collected the inventory. The site keeps 90 days of changes.

--since takes an age back from now (30m, 24h, 2d, 1w) or a time (RFC 3339,
or a date: 2026-11-21), as status list does.
With -o json the output is a JSON array of changes ([] when none).`,
		Example: `  steward inventory history web-01
  steward inventory history web-01 --since 2d
  steward inventory history web-01 -o json | jq '.[] | select(.section == "software")'`,
		Args: refArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			from, err := parseStatusTime(since, time.Now())
			if err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				h, err := c.InventoryHistory(ctx, args[0], from)
				if err != nil {
					return err
				}
				return g.print(h.Changes, func(w io.Writer) { historyTable(w, h.Changes) })
			})
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "only changes after this: an age back from now (24h, 2d, 1w) or a time (RFC 3339, or a date)")
	return cmd
}

func newInventoryRefreshCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "refresh REF",
		Short: "Ask a client for a fresh inventory report now",
		Long: `Ask a client's agent to collect its inventory now and report what changed.
The agent reports within seconds when it is online; an offline agent reports
when it next connects. REF is the client's name or ID.`,
		Example: `  steward inventory refresh web-01
  steward inventory refresh web-01 && steward inventory history web-01 --since 5m`,
		Args: refArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				cl, err := c.InventoryRefresh(ctx, args[0])
				if err != nil {
					return err
				}
				return g.print(cl, func(w io.Writer) {
					fmt.Fprintf(w, "asked %s (%s) for an inventory report", cl.Name, cl.ID)
					if !cl.Online {
						fmt.Fprint(w, "; it is offline and will report when it connects")
					}
					fmt.Fprintln(w)
				})
			})
		},
	}
}

// inventoryDetail writes an inventory as labelled lines and small tables.
func inventoryDetail(w io.Writer, v inventoryView) {
	inv := v.Inventory
	os := strings.TrimSpace(inv.OS.Name + " " + inv.OS.Version)
	rows := [][2]string{
		{"Client", v.Client.Name + " (" + v.Client.ID + ")"},
		{"Collected", stamp(v.Collected)},
		{"Report", strconv.FormatUint(v.Seq, 10)},
		{"OS", dash(os)},
		{"Family", dash(inv.OS.Family)},
		{"Kernel", dash(inv.OS.Kernel)},
		{"Arch", dash(inv.Arch)},
		{"CPU", fmt.Sprintf("%s, %d cores", dash(inv.CPU.Model), inv.CPU.Cores)},
		{"Memory", bytesIEC(inv.Memory.Total)},
		{"Users", dash(strings.Join(inv.Users, ", "))},
		{"Admins", dash(strings.Join(inv.Admins, ", "))},
	}
	var labels []string
	for _, k := range slices.Sorted(maps.Keys(inv.Labels)) {
		labels = append(labels, k+"="+inv.Labels[k])
	}
	rows = append(rows, [2]string{"Labels", dash(strings.Join(labels, ", "))})
	for _, r := range rows {
		fmt.Fprintf(w, "%s:\t%s\n", r[0], r[1])
	}
	fmt.Fprintf(w, "\nDISK\tMOUNT\tFS\tSIZE\tFREE\n")
	for _, d := range inv.Disks {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", d.Device, d.Mount, d.FSType, bytesIEC(d.Total), bytesIEC(d.Free))
	}
	fmt.Fprintf(w, "\nINTERFACE\tMAC\tADDRESSES\n")
	for _, n := range inv.Networks {
		fmt.Fprintf(w, "%s\t%s\t%s\n", n.Name, dash(n.MAC), dash(strings.Join(n.Addrs, ", ")))
	}
	fmt.Fprintf(w, "\nSOFTWARE (%d)\tVERSION\tSOURCE\n", len(inv.Software))
	sw := slices.Clone(inv.Software)
	slices.SortFunc(sw, func(a, b contracts.Software) int { return strings.Compare(a.Name, b.Name) })
	for _, s := range sw {
		fmt.Fprintf(w, "%s\t%s\t%s\n", s.Name, s.Version, dash(s.Source))
	}
}

// historyTable writes inventory changes as rows.
func historyTable(w io.Writer, changes []contracts.InventoryChange) {
	fmt.Fprintln(w, "TIME\tREPORT\tSECTION\tCHANGE\tITEM\tFROM\tTO")
	for _, c := range changes {
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", c.Time.Local().Format("2006-01-02 15:04"), c.Seq, c.Section, c.Change, c.Item, dash(c.From), dash(c.To))
	}
}

// bytesIEC renders a byte count in binary units.
func bytesIEC(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
