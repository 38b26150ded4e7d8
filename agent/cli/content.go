package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/agent/control"
	"github.com/stewardhq/steward/agent/state"
	"github.com/stewardhq/steward/contracts"
)

const contentLong = `The site assigns package versions to collections ("steward packages deploy");
the agent of every client in them fetches each version assigned, checks it
against the list its site signed (the manifest's digest, every chunk's
hash, every file's SHA-256, paths and links that stay inside), and installs
it under STATE-DIR/content/PACKAGE/VERSION. A version appears there only
complete: it is staged in STATE-DIR/content/.staging and renamed into place.
A download cut short resumes with the chunks still missing. A version that
failed (a damaged chunk, a full disk) is tried again after 10 minutes,
doubling with each failure in a row up to 12 hours, or at once when the
site says the assignments changed (a "steward packages deploy" to one of
the client's collections).

"content" lists what the agent holds: each version's state (downloading,
installed or failed, with the reason), its size, where it is installed and
whether the site still assigns it. Versions no longer assigned stay
installed. Run it as the user that runs the agent: the control socket is
private to that user.`

func newContentCmd(stdout io.Writer) *cobra.Command {
	cmd := contentListCmd(stdout, "content", "List the package versions this machine holds, fetches or failed to fetch")
	cmd.AddCommand(contentListCmd(stdout, "list", "List the package versions this machine holds (as \"content\" does)"))
	return cmd
}

func contentListCmd(stdout io.Writer, use, short string) *cobra.Command {
	var f agentFlags
	example := `  steward-agent content --state-dir /var/lib/steward-agent
  steward-agent content list --state-dir ./agent-state -o json`
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Long:    contentLong,
		Example: example,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var list control.ContentList
			if err := f.call(cmd.Context(), control.VerbContent, nil, &list); err != nil {
				return err
			}
			if f.output == "json" {
				return writeJSON(stdout, list.Content)
			}
			return printContent(stdout, list, time.Now())
		},
	}
	f.add(cmd, true)
	return cmd
}

// printContent writes the content held as a table.
func printContent(w io.Writer, list control.ContentList, now time.Time) error {
	if list.Dir == "" {
		fmt.Fprintln(w, "This agent keeps no content (it runs without a state dir).")
		return nil
	}
	if len(list.Content) == 0 {
		fmt.Fprintf(w, "No content yet (the content directory is %s).\n", list.Dir)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PACKAGE\tVERSION\tSTATE\tSIZE\tASSIGNED\tWHEN\tDETAIL")
	for _, c := range list.Content {
		size := contracts.HumanBytes(c.Size)
		detail := c.Path
		when := ago(c.Updated, now)
		switch c.State {
		case state.ContentDownloading:
			size = contracts.HumanBytes(c.Bytes) + " of " + contracts.HumanBytes(c.Size)
			detail = "staged in " + list.Dir + "/.staging"
		case contracts.ContentFailed:
			detail = c.Error
			if !c.Retry.IsZero() {
				detail += "; tried again " + until(c.Retry, now) + " or when the site's assignments change"
			}
		case contracts.ContentInstalled:
			when = ago(c.Installed, now)
		}
		if !c.Reported && c.State != state.ContentDownloading {
			detail += " (not yet reported to the site)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Package, c.Version, c.State, size,
			map[bool]string{true: "yes", false: "no"}[c.Assigned], when, strings.TrimSpace(detail))
	}
	return tw.Flush()
}

// contentSummary is the content line of the status table.
func contentSummary(content []contracts.ContentHeld) string {
	if len(content) == 0 {
		return "none"
	}
	n := map[string]int{}
	for _, c := range content {
		n[c.State]++
	}
	var parts []string
	for _, s := range []string{contracts.ContentInstalled, state.ContentDownloading, contracts.ContentFailed} {
		if n[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[s], s))
		}
	}
	return strings.Join(parts, ", ") + " (steward-agent content)"
}
