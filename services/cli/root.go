// Package cli is the `steward` command: the site server (`steward serve`)
// and the operator CLI (`steward <noun> <verb>`), built on cobra.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
	"github.com/stewardhq/steward/telemetry"
)

// Version is the build's version, set by the linker (-X).
var Version = "0.1.0-dev"

// DefaultServer is where the CLI and agents look for a site by default.
const DefaultServer = "nats://127.0.0.1:4222"

// DefaultDataDir is where `steward serve` keeps its state by default.
const DefaultDataDir = "./steward-data"

// globals are the flags every operator command shares.
type globals struct {
	server   string
	identity string
	ca       string
	output   string
	site     string
	operator string
	timeout  time.Duration
	otlp     string
	stdout   io.Writer
	stdin    io.Reader // nil: os.Stdin (tests set it)
	stderr   io.Writer
}

// Execute runs the steward command with os.Args and returns the exit code.
func Execute() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := NewRoot(os.Stdout, os.Stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			return int(ee) // the command said what it had to (a remote command's own status)
		}
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	return 0
}

// exitError is an exit code chosen by a command.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// NewRoot builds the command tree writing to stdout and stderr.
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "steward",
		Short: "Steward: systems management over NATS",
		Long: `Steward manages client machines: it discovers and inventories them,
distributes policy, collects status messages and brokers remote sessions.

Run a site on this machine:
  steward serve                      # embedded NATS + JetStream under ./steward-data

Then manage it (the first start writes ./steward-data/admin.nk, the bootstrap
Full Administrator identity, which the CLI uses by default):
  steward clients list
  steward tokens create --uses 10 --ttl 24h`,
		Example: `  steward serve
  steward clients list -o json
  steward status list --severity error --since 1d`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", envOr("STEWARD_SERVER", DefaultServer), "site NATS URL (env STEWARD_SERVER)")
	pf.StringVar(&g.identity, "identity", os.Getenv("STEWARD_IDENTITY"), "operator identity file, an NKey seed (env STEWARD_IDENTITY; default ./steward-data/admin.nk when present)")
	pf.StringVar(&g.ca, "ca", os.Getenv("STEWARD_CA"), "site CA certificate file, <data>/tls/ca.crt (env STEWARD_CA; default: the CA fingerprint in the identity file)")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	pf.StringVar(&g.site, "site", os.Getenv("STEWARD_SITE"), "site code, when the identity file does not say it; refused when it says another (env STEWARD_SITE)")
	pf.StringVar(&g.operator, "operator", os.Getenv("STEWARD_OPERATOR"), "operator name, when the identity file does not say it; refused when it says another (env STEWARD_OPERATOR)")
	pf.DurationVar(&g.timeout, "timeout", 10*time.Second, "how long to wait for the site to answer")
	pf.StringVar(&g.otlp, "otlp-endpoint", os.Getenv("STEWARD_OTLP_ENDPOINT"), "export traces over OTLP/HTTP to host:port (env STEWARD_OTLP_ENDPOINT; off by default)")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if g.output != "table" && g.output != "json" {
			return fmt.Errorf("-o %q: must be table or json", g.output)
		}
		shutdown, err := telemetry.Setup(cmd.Context(), telemetry.Config{Service: "steward", Version: Version, Endpoint: g.otlp, Insecure: true})
		if err != nil {
			return err
		}
		cobra.OnFinalize(func() { _ = shutdown(context.Background()) })
		return nil
	}
	root.AddCommand(
		newServeCmd(g),
		newTokensCmd(g),
		newClientsCmd(g),
		newInventoryCmd(g),
		newCollectionsCmd(g),
		newSettingsCmd(g),
		newStatusCmd(g),
		newSiteCmd(g),
		newAdminsCmd(g),
		newRolesCmd(g),
		newAccountsCmd(g),
		newSessionCmd(g),
		newAssistCmd(g),
		newPackagesCmd(g),
		newRoutesCmd(g),
		newSitesCmd(g),
	)
	RejectUnknownSubcommands(root)
	return root
}

// RejectUnknownSubcommands makes every command that only groups others
// fail on an argument that names none of them (cobra prints the group's
// help and exits 0, so `steward clients aprove x` looked like success to
// a script), suggesting the nearest; without arguments it prints its help.
func RejectUnknownSubcommands(c *cobra.Command) {
	for _, sub := range c.Commands() {
		RejectUnknownSubcommands(sub)
	}
	if c.Parent() == nil || !c.HasSubCommands() || c.Runnable() {
		return // the root reports unknown commands itself
	}
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if cmd.SuggestionsMinimumDistance <= 0 {
			cmd.SuggestionsMinimumDistance = 2 // cobra's default, set only for the root
		}
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
		}
		return fmt.Errorf("%s\nRun '%s --help' for its commands", msg, cmd.CommandPath())
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// connect opens an operator connection with the global flags.
func (g *globals) connect(ctx context.Context) (*client.Client, error) {
	id := g.identity
	if id == "" {
		def := DefaultDataDir + "/admin.nk"
		if _, err := os.Stat(def); err == nil {
			id = def
		}
	}
	if err := client.ExposedIdentity(id); err != nil {
		fmt.Fprintln(g.stderr, "warning:", err)
	}
	return client.Connect(ctx, client.Options{Server: g.server, Identity: id, Site: g.site, Operator: g.operator, CA: g.ca, Timeout: g.timeout})
}

// withClient runs fn with a connected client and a context bounded by --timeout.
func (g *globals) withClient(cmd *cobra.Command, fn func(ctx context.Context, c *client.Client) error) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
	defer cancel()
	c, err := g.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return explain(fn(ctx, c))
}

// explain adds the operator's next step to well-known failures.
func explain(err error) error {
	switch contracts.CodeOf(err) {
	case contracts.CodeUnavailable:
		return fmt.Errorf("%w\n(is `steward serve` running, and --server right?)", err)
	}
	return err
}

// print writes v as JSON with -o json, else calls table with a tabwriter.
func (g *globals) print(v any, table func(w io.Writer)) error {
	if g.output == "json" {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// ago renders a time as a short age for tables.
func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return d.String() + " ago"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.Local().Format("2006-01-02")
}
