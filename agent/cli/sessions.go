package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/agent/control"
	"github.com/stewardhq/steward/contracts"
)

// agentFlags are the flags of the commands that talk to the running agent.
type agentFlags struct {
	dir     string
	output  string
	timeout time.Duration
}

func (f *agentFlags) add(cmd *cobra.Command, output bool) {
	fl := cmd.Flags()
	fl.StringVar(&f.dir, "state-dir", "", "the agent's state dir (required)")
	if output {
		fl.StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	}
	fl.DurationVar(&f.timeout, "timeout", 5*time.Second, "how long to wait for the agent to answer")
}

// call sends verb and args to the agent and decodes its answer into out.
func (f *agentFlags) call(ctx context.Context, verb string, args []string, out any) error {
	if f.dir == "" {
		return errors.New("--state-dir is required")
	}
	if f.output != "" && f.output != "table" && f.output != "json" {
		return fmt.Errorf("-o %q: must be table or json", f.output)
	}
	abs, err := filepath.Abs(f.dir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	err = control.Call(ctx, control.SocketPath(abs), verb, args, out)
	if errors.Is(err, control.ErrNotRunning) {
		return fmt.Errorf("no agent is running with state dir %s", abs)
	}
	return err
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newSessionsCmd(stdout io.Writer) *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "sessions",
		Short: "List the remote sessions running on this machine; end one; show the session log",
		Long: `Operators reach this machine through the site's session broker: a shell in a
terminal, a TCP tunnel to a local port, or the user's own terminal shared for
assistance. The agent checks every session against its own policy, asks the
logged-on user when the policy says so, and enforces the access level itself
(view only: the operator's keystrokes never reach the machine).

"sessions" lists the sessions running now: who, what, with which access,
since when, and the operators who joined. "sessions end ID" ends one at once
(the operator sees "ended by the user on the client"). "sessions log" shows
the sessions that ran here and the ones the agent refused, newest first.

Run it as the user that runs the agent (sudo): the control socket is
private to that user.`,
		Example: `  steward-agent sessions --state-dir /var/lib/steward-agent
  steward-agent sessions --state-dir /var/lib/steward-agent -o json
  steward-agent sessions end 0195a3c4 --state-dir /var/lib/steward-agent
  steward-agent sessions log --state-dir /var/lib/steward-agent --limit 50`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var list contracts.SessionListResponse
			if err := f.call(cmd.Context(), control.VerbSessions, nil, &list); err != nil {
				return err
			}
			if f.output == "json" {
				return writeJSON(stdout, list.Sessions)
			}
			return printSessions(stdout, list.Sessions, time.Now())
		},
	}
	f.add(cmd, true)
	cmd.AddCommand(newSessionsEndCmd(stdout), newSessionsLogCmd(stdout))
	return cmd
}

func newSessionsEndCmd(stdout io.Writer) *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "end ID",
		Short: "End a remote session running on this machine",
		Long: `End the session ID (or the one session whose ID starts with ID) at once: its
shell is hung up (then killed), its tunnel closed, and the operator is told
"ended by the user on the client".`,
		Example: `  steward-agent sessions end 0195a3c4-0000-7000-8000-0000000000d1 --state-dir /var/lib/steward-agent
  steward-agent sessions end 0195a3c4 --state-dir ./agent-state -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var resp contracts.SessionOpenResponse
			if err := f.call(cmd.Context(), control.VerbSessionEnd, args, &resp); err != nil {
				return err
			}
			if f.output == "json" {
				return writeJSON(stdout, resp.Session)
			}
			s := resp.Session
			fmt.Fprintf(stdout, "Ended the %s session %s of %s (%s).\n", s.Kind, s.ID, s.Operator, s.EndReason)
			return nil
		},
	}
	f.add(cmd, true)
	return cmd
}

func newSessionsLogCmd(stdout io.Writer) *cobra.Command {
	var (
		f     agentFlags
		limit int
	)
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Show the sessions that ran on this machine and the ones refused",
		Long: `Show the session log kept in the agent's state (the last 1000 entries),
newest first: every session that ran (who, what, access, consent, how it
ended, bytes each way) and every grant the agent refused, with the reason.`,
		Example: `  steward-agent sessions log --state-dir /var/lib/steward-agent
  steward-agent sessions log --state-dir ./agent-state --limit 5 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return fmt.Errorf("--limit %d: want 0 (all) or more", limit)
			}
			var log control.SessionLog
			if err := f.call(cmd.Context(), control.VerbSessionLog, []string{strconv.Itoa(limit)}, &log); err != nil {
				return err
			}
			if f.output == "json" {
				return writeJSON(stdout, log.Records)
			}
			if len(log.Records) == 0 {
				fmt.Fprintln(stdout, "No sessions yet.")
				return nil
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "WHEN\tSESSION\tOPERATOR\tKIND\tACCESS\tCONSENT\tOUTCOME")
			for _, r := range log.Records {
				outcome := ""
				switch {
				case !r.Accepted:
					outcome = "refused (" + r.Deny + "): " + r.Reason
				case r.Join:
					outcome = "joined"
				case r.State == contracts.SessionEnded:
					outcome = fmt.Sprintf("ended after %s: %s", r.Ended.Sub(r.Started).Round(time.Second), r.EndReason)
				default:
					outcome = "running"
				}
				consent := dash(r.Consent)
				if r.User != "" {
					consent += " (" + r.User + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.At.Local().Format(time.DateTime), r.ID, r.Operator, kindOf(r.SessionInfo, r.Join),
					dash(r.Access), consent, outcome)
			}
			return tw.Flush()
		},
	}
	f.add(cmd, true)
	cmd.Flags().IntVar(&limit, "limit", 20, "how many entries, newest first (0: all)")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// kindOf is a session's kind with its port or command.
func kindOf(s contracts.SessionInfo, join bool) string {
	k := s.Kind
	switch {
	case s.Kind == contracts.SessionTunnel && s.Port > 0:
		k += ":" + strconv.Itoa(s.Port)
	case len(s.Command) > 0:
		k += " (" + truncate(strings.Join(s.Command, " "), 40) + ")"
	}
	if join {
		k += " join"
	}
	return k
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// printSessions writes the running sessions as a table.
func printSessions(w io.Writer, sessions []contracts.SessionInfo, now time.Time) error {
	if len(sessions) == 0 {
		fmt.Fprintln(w, "No remote session is running.")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tOPERATOR\tKIND\tACCESS\tCONSENT\tSINCE\tIN\tOUT\tALSO")
	for _, s := range sessions {
		var also []string
		for _, p := range s.Participants {
			if p.Operator != s.Operator {
				also = append(also, p.Operator+" ("+p.Access+")")
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", s.ID, s.Operator, kindOf(s, false), s.Access, dash(s.Consent),
			ago(s.Started, now), s.BytesIn, s.BytesOut, dash(strings.Join(also, ", ")))
	}
	return tw.Flush()
}

func newConsentCmd(stdout io.Writer) *cobra.Command {
	var (
		f              agentFlags
		accept, refuse bool
	)
	cmd := &cobra.Command{
		Use:   "consent [--accept | --deny] [ID]",
		Short: "List remote sessions waiting for your consent, and answer them",
		Long: `When the client's policy asks the logged-on user (remoteTools.promptUser), or
the site asks for consent, a remote session waits for an answer before it
starts. Without --accept or --deny, "consent" lists the prompts waiting:
the operator, the kind of session (shell, tunnel to a port, assistance,
or joining a running session), the access it would get, and how long is
left: nobody answering in time refuses the session.

--accept or --deny answers the prompt ID (its ID or its session's, or the
start of either); without ID, the only prompt waiting. Your answer is
recorded with your user name ($SUDO_USER under sudo) and the operator sees it.`,
		Example: `  steward-agent consent --state-dir /var/lib/steward-agent
  steward-agent consent --state-dir /var/lib/steward-agent -o json
  sudo steward-agent consent --state-dir /var/lib/steward-agent --accept
  sudo steward-agent consent --state-dir /var/lib/steward-agent --deny 0195a3c4`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if accept && refuse {
				return errors.New("--accept and --deny: choose one")
			}
			if !accept && !refuse {
				if len(args) > 0 {
					return fmt.Errorf("%q: give --accept or --deny with a prompt ID", args[0])
				}
				var list control.ConsentList
				if err := f.call(cmd.Context(), control.VerbConsent, nil, &list); err != nil {
					return err
				}
				if f.output == "json" {
					return writeJSON(stdout, list.Prompts)
				}
				return printPrompts(stdout, list.Prompts, time.Now())
			}
			id := "-"
			if len(args) == 1 {
				id = args[0]
			}
			verdict := "deny"
			if accept {
				verdict = "accept"
			}
			var ans control.ConsentAnswer
			if err := f.call(cmd.Context(), control.VerbConsentAnswer, []string{id, verdict, osUser()}, &ans); err != nil {
				return err
			}
			if f.output == "json" {
				return writeJSON(stdout, ans)
			}
			what := "Refused"
			if ans.Accepted {
				what = "Accepted"
			}
			fmt.Fprintf(stdout, "%s the %s session %s of %s (as %s).\n", what, promptKind(ans.Prompt), ans.Prompt.Session, ans.Prompt.Operator, ans.User)
			return nil
		},
	}
	f.add(cmd, true)
	cmd.Flags().BoolVar(&accept, "accept", false, "accept the prompt ID (or the only one waiting)")
	cmd.Flags().BoolVar(&refuse, "deny", false, "refuse the prompt ID (or the only one waiting)")
	return cmd
}

// promptKind says what a prompt asks for.
func promptKind(p control.ConsentPrompt) string {
	k := p.Kind
	switch {
	case p.Offer:
		k = "assistance (offered by the helper)"
	case p.Kind == contracts.SessionTunnel:
		k = fmt.Sprintf("tunnel to port %d", p.Port)
	case len(p.Command) > 0:
		k = fmt.Sprintf("%s (%s)", p.Kind, truncate(strings.Join(p.Command, " "), 40))
	}
	if p.Join {
		k = "joining the " + k
	}
	return k
}

func printPrompts(w io.Writer, prompts []control.ConsentPrompt, now time.Time) error {
	if len(prompts) == 0 {
		fmt.Fprintln(w, "No session is waiting for consent.")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tOPERATOR\tSESSION\tACCESS\tANSWER WITHIN")
	for _, p := range prompts {
		left := max(p.Deadline.Sub(now).Round(time.Second), 0)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.ID, p.Operator, promptKind(p), p.Access, left)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "Answer with --accept ID or --deny ID (no answer in time refuses).")
	return nil
}

// osUser is who runs this command: $SUDO_USER when sudo ran it, else the
// current user.
func osUser() string {
	if u := os.Getenv("SUDO_USER"); u != "" && !strings.ContainsAny(u, " \t\r\n") {
		return u
	}
	if u, err := user.Current(); err == nil && u.Username != "" && !strings.ContainsAny(u.Username, " \t\r\n") {
		return u.Username
	}
	return "uid-" + strconv.Itoa(os.Getuid())
}
