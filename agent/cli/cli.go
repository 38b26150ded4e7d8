// Package cli is the `steward-agent` command: `steward-agent run` enrolls
// this machine with a site and keeps it connected; `steward-agent status`
// asks the running agent what it is doing.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/agent"
	"github.com/stewardhq/steward/agent/control"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/telemetry"
)

// Version is the build's version, set by the linker:
// go build -ldflags "-X github.com/stewardhq/steward/agent/cli.Version=1.2.3".
var Version = "0.1.0-dev"

// Execute runs steward-agent with os.Args and returns the exit code.
func Execute() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := NewRoot(os.Stdout, os.Stderr).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	return 0
}

// NewRoot builds the command tree writing to stdout and stderr.
func NewRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "steward-agent",
		Short: "The Steward client agent",
		Long: `steward-agent runs on every managed machine (a client). It enrolls the machine
with a Steward site, then stays connected to the site over NATS and reports in.

Everything it keeps lives in one state dir:
  state.db    its identity (client ID, site, the pinned site signing key)
  agent.nk    its NKey seed, the machine's credential (mode 0600; keep it secret)
  agent.sock  the local control socket that "steward-agent status" talks to
  content/    the package versions the site assigns this machine

Remote sessions the site brokers run through the agent, which checks each
against its own policy and asks the logged-on user when it says so:
"steward-agent consent" answers, "steward-agent sessions" lists and ends,
"steward-agent assist" asks for help and shares this terminal with a helper.
Packages the site assigns are installed under STATE-DIR/content
("steward-agent content" lists them).

Get started (on the site: steward tokens create --uses 10 --ttl 24h):
  steward-agent run --state-dir /var/lib/steward-agent --token STW1-...
  steward-agent status --state-dir /var/lib/steward-agent`,
		Example: `  steward-agent run --state-dir /var/lib/steward-agent --server nats://site.example.org:4222 --token STW1-...
  steward-agent status --state-dir /var/lib/steward-agent -o json
  steward-agent settings reset --state-dir /var/lib/steward-agent`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newRunCmd(stderr), newStatusCmd(stdout), newSettingsCmd(stdout), newSessionsCmd(stdout), newConsentCmd(stdout),
		newAssistCmd(stdout), newContentCmd(stdout), newVersionCmd(stdout))
	// A group of commands given an argument that names none of them fails
	// (cobra would print its help and exit 0).
	for _, c := range root.Commands() {
		if c.HasSubCommands() && !c.Runnable() {
			c.Args = cobra.NoArgs
			c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		}
	}
	return root
}

func newRunCmd(stderr io.Writer) *cobra.Command {
	var (
		cfg      agent.Config
		otlp     string
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Enroll this machine (if needed) and keep it connected to its site",
		Long: `Run the agent until it is stopped (SIGINT or SIGTERM).

On the first run the agent creates its key (STATE-DIR/agent.nk) and enrolls:
  - with --token (from "steward tokens create"), the site admits it at once.
    The token also pins the site's signing key: the agent refuses a server
    that cannot prove it holds that key.
  - without a token, the site queues it as pending until an operator runs
    "steward clients approve"; the site key is trusted on first use.
Once enrolled, the identity is kept in STATE-DIR/state.db and later runs
reconnect without a token. The agent sends a heartbeat on every connect and
every --heartbeat, and reconnects forever (with backoff) when the site is
unreachable or refuses it.

When the client was deleted at the site ("steward clients delete"), the
agent's state is "deleted" and it checks again with backoff. To manage the
machine again, run the agent with a new token of its site: it enrolls again
with the same key as a new client, keeping its local state. A token of
another site is not used: to move the machine to another site, stop the
agent and move the state dir aside.

Only one agent may use a state dir at a time.`,
		Example: `  # Enroll with a token and run (the token is best passed in the environment:
  # flags are visible to every user in the process list)
  STEWARD_TOKEN=STW1-... steward-agent run --state-dir /var/lib/steward-agent \
      --server nats://site.example.com:4222

  # Enroll without a token; an operator approves the client on the site
  steward-agent run --state-dir ./agent-state --site P01 --name kiosk-7

  # A lab agent that reports every 10s and exports traces
  steward-agent run --state-dir ./agent-state --heartbeat 10s \
      --otlp-endpoint 127.0.0.1:4318 --log-level debug`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cfg.StateDir == "" {
				return errors.New("--state-dir is required (where the agent keeps its identity, key and control socket)")
			}
			if !cmd.Flags().Changed("token") {
				cfg.Token = strings.TrimSpace(os.Getenv("STEWARD_TOKEN"))
			}
			if !cmd.Flags().Changed("server") {
				cfg.Server = strings.TrimSpace(os.Getenv("STEWARD_SERVER")) // "": the enrolled server, else the default
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level %q: must be debug, info, warn or error", logLevel)
			}
			cfg.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
			cfg.Version = Version

			ctx := cmd.Context()
			shutdown, err := telemetry.Setup(ctx, telemetry.Config{Service: "steward-agent", Version: Version, Endpoint: otlp, Insecure: true})
			if err != nil {
				return err
			}
			defer func() {
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = shutdown(sctx)
			}()

			a, err := agent.New(cfg)
			if err != nil {
				return err
			}
			runErr := a.Run(ctx)
			return errors.Join(runErr, a.Close())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Server, "server", agent.DefaultServer, "site NATS URL (env STEWARD_SERVER; once enrolled, the default is the server enrolled with)")
	// The token's default is read in RunE, so that --help never prints it.
	f.StringVar(&cfg.Token, "token", "", "enrollment token from \"steward tokens create\" (env STEWARD_TOKEN); needed on the first run, and to enroll again after the client was deleted at the site")
	f.StringVar(&cfg.StateDir, "state-dir", "", "directory for state.db, agent.nk and agent.sock (required)")
	f.StringVar(&cfg.Name, "name", "", "client name (default: the short host name, or the name enrolled with)")
	f.StringVar(&cfg.Site, "site", "", "site code to enroll with when there is no token (default: "+agent.DefaultSite+")")
	f.DurationVar(&cfg.Heartbeat, "heartbeat", agent.DefaultHeartbeat, "heartbeat interval")
	f.StringVar(&otlp, "otlp-endpoint", os.Getenv("STEWARD_OTLP_ENDPOINT"), "export traces over OTLP/HTTP to host:port (env STEWARD_OTLP_ENDPOINT; off by default)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func newStatusCmd(stdout io.Writer) *cobra.Command {
	var (
		dir     string
		output  string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what the agent running with a state dir is doing",
		Long: `Ask the agent running with --state-dir, through its control socket
(STATE-DIR/agent.sock), for its state: enrolling, pending (waiting for an
operator's approval), connected, disconnected (reconnecting), refused (the
site refuses its key or its enrollment; the message says why) or deleted
(the site no longer knows the client: run the agent with a new token to
enroll it again; the message says how).

Run it as the user that runs the agent: the socket is private to that user.`,
		Example: `  steward-agent status --state-dir /var/lib/steward-agent
  steward-agent status --state-dir ./agent-state -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				return errors.New("--state-dir is required")
			}
			if output != "table" && output != "json" {
				return fmt.Errorf("-o %q: must be table or json", output)
			}
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			st, err := control.Status(ctx, control.SocketPath(abs))
			if errors.Is(err, control.ErrNotRunning) {
				return fmt.Errorf("no agent is running with state dir %s", abs)
			}
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			return printStatus(stdout, st, time.Now())
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "state-dir", "", "the agent's state dir (required)")
	f.StringVarP(&output, "output", "o", "table", "output format: table or json")
	f.DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the agent to answer")
	return cmd
}

// printStatus writes st as an aligned key/value table.
func printStatus(w io.Writer, st contracts.AgentStatus, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v == "" {
			v = "-"
		}
		fmt.Fprintf(tw, "%s:\t%s\n", k, v)
	}
	row("State", st.State)
	if st.Message != "" {
		row("Message", st.Message)
	}
	row("Name", st.Name)
	row("Client ID", st.ClientID)
	row("Site", st.Site)
	row("Site key", st.SiteKey)
	row("Server", st.Server)
	row("Connected", map[bool]string{true: "yes", false: "no"}[st.Connected])
	row("Last heartbeat", ago(st.LastHeartbeat, now))
	row("Started", ago(st.Started, now))
	row("Version", fmt.Sprintf("%s (capability %d)", st.AgentVersion, st.Capability))
	const noPolicy = "none applied yet (the agent runs on its command line's settings)"
	if p := st.Policy; p != nil {
		if p.Revision > 0 {
			row("Policy", fmt.Sprintf("revision %d, applied %s, expires %s", p.Revision, ago(p.Applied, now), p.Expires.Local().Format(time.DateTime)))
		} else {
			row("Policy", noPolicy)
		}
		row("Intervals", fmt.Sprintf("heartbeat %s, inventory %s, policy refresh %s",
			time.Duration(p.Intervals.Heartbeat), time.Duration(p.Intervals.Inventory), time.Duration(p.Intervals.PolicyRefresh)))
		if r := p.LastRejection; r != nil {
			row("Last rejected", fmt.Sprintf("%s: %s (%s; %d since start)", r.Code, r.Reason, ago(r.At, now), p.Rejected))
		}
		printRemoteAssistance(tw, *p)
	} else {
		row("Policy", noPolicy)
	}
	row("Content", contentSummary(st.Content))
	if len(st.Sessions) == 0 {
		row("Remote sessions", "none")
	}
	for i, s := range st.Sessions {
		k := "Remote sessions"
		if i > 0 {
			k = ""
		}
		line := fmt.Sprintf("%s session %s of %s, %s access, since %s", kindOf(s, false), s.ID, s.Operator, s.Access, ago(s.Started, now))
		for _, p := range s.Participants {
			if p.Operator != s.Operator {
				line += fmt.Sprintf("; %s joined (%s)", p.Operator, p.Access)
			}
		}
		if k == "" {
			fmt.Fprintf(tw, "\t%s\n", line)
		} else {
			row(k, line)
		}
	}
	return tw.Flush()
}

// ago renders t with its age, "-" for the zero time.
func ago(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	return fmt.Sprintf("%s (%s ago)", t.Local().Format(time.DateTime), now.Sub(t).Round(time.Second))
}

// until is when t comes, as ago says when it was.
func until(t, now time.Time) string {
	if !t.After(now) {
		return "at the next sync"
	}
	return fmt.Sprintf("at %s (in %s)", t.Local().Format(time.DateTime), t.Sub(now).Round(time.Second))
}

// versionInfo is what version prints.
type versionInfo struct {
	Version    string `json:"version"`
	Capability int    `json:"capability"` // the agent protocol's version (contracts.CapabilityVersion)
	Go         string `json:"go"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
}

func newVersionCmd(stdout io.Writer) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the agent's version and protocol capability",
		Long: `Print the agent's version, the protocol capability it speaks (the site
refuses agents older than it supports), the Go version it was built with,
and its OS and architecture.`,
		Example: `  steward-agent version
  steward-agent version -o json | jq -r .version`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			v := versionInfo{Version: Version, Capability: contracts.CapabilityVersion, Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
			switch output {
			case "json":
				return writeJSON(stdout, v)
			case "table":
				_, err := fmt.Fprintf(stdout, "steward-agent %s (capability %d, %s, %s/%s)\n", v.Version, v.Capability, v.Go, v.OS, v.Arch)
				return err
			}
			return fmt.Errorf("-o %q: must be table or json", output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}
