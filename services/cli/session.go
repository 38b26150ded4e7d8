package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/stewardhq/steward/contracts"
	"github.com/stewardhq/steward/services/client"
	"golang.org/x/term"
)

// newSessionCmd is `steward session`: remote sessions to clients.
func newSessionCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "session",
		Aliases: []string{"sessions"},
		Short:   "Remote sessions: shells and tunnels to clients, joined, ended and recorded",
		Long: `A remote session reaches a client through the site: a terminal (shell) or a
TCP tunnel to a port on the client's loopback. The site's session broker
allows it only when all three conditions hold, and says which one failed:

  role    your security role has Collection:RemoteControl on a collection
          that holds the client
  policy  the client's remote tools settings are enabled with an access level
          that allows the kind (shell and tunnel need full; observe needs
          view), and a tunnel's port is in tunnelPorts
  viewer  you are in the client's Permitted Viewers, or one of its local
          administrators

The client has the last word: its agent checks the site's signed grant
against its own policy, asks the logged-on user for consent when the policy
says promptUser, and enforces the access level itself (in view mode no input
reaches the terminal). Every session is audited as status messages and
terminals are recorded (asciicast v2: asciinema plays them too).`,
		Example: `  steward session shell web-01
  steward session shell web-01 -- uname -a
  steward session tunnel web-01 --port 5900 --local 127.0.0.1:5901
  steward session list
  steward session join 01935c1e-... --observe
  steward session recordings play 01935c1e-...`,
	}
	cmd.AddCommand(newSessionShellCmd(g), newSessionTunnelCmd(g), newSessionListCmd(g), newSessionJoinCmd(g),
		newSessionEndCmd(g), newSessionRecordingsCmd(g))
	return cmd
}

// withSession runs fn with a connected client and no overall timeout (a
// session lasts as long as it lasts); requests inside bound themselves.
func (g *globals) withSession(cmd *cobra.Command, fn func(ctx context.Context, c *client.Client) error) error {
	cctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
	c, err := g.connect(cctx)
	cancel()
	if err != nil {
		return explain(err)
	}
	defer c.Close()
	return explain(fn(cmd.Context(), c))
}

func newSessionShellCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "shell CLIENT [-- COMMAND [ARG...]]",
		Short: "Open a terminal on a client, or run one command there",
		Long: `Open an interactive login shell on the client, in a real terminal (PTY) with
your window size, or with -- COMMAND run that one command: its output is
streamed and its exit status becomes this command's own.

When this command's input is not a terminal, it is sent to the shell as
typed input and the end of it as Ctrl-D; with a COMMAND, input is sent only
from a terminal. Leave an interactive session by exiting the shell, or with
the escape sequence Enter ~ . (as in ssh).`,
		Example: `  steward session shell web-01
  steward session shell web-01 -- uname -a
  steward session shell web-01 -- sh -c 'systemctl is-active nginx'; echo $?
  printf 'hostname\nexit\n' | steward session shell web-01`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, command := args[0], args[1:]
			if cmd.ArgsLenAtDash() == -1 && len(args) > 1 {
				return fmt.Errorf("put the command after --: steward session shell %s -- %s", ref, strings.Join(command, " "))
			}
			return g.withSession(cmd, func(ctx context.Context, c *client.Client) error {
				stdin, isTerm := g.input()
				cols, rows := termSize()
				req := contracts.SessionOpenRequest{Ref: ref, Kind: contracts.SessionShell, Command: command,
					Cols: cols, Rows: rows, Term: os.Getenv("TERM")}
				s, err := c.SessionOpen(ctx, req)
				if err != nil {
					return err
				}
				return g.runTerminal(ctx, s, stdin, isTerm, len(command) > 0)
			})
		},
	}
	return cmd
}

// input is the command's standard input and whether it is a terminal.
func (g *globals) input() (io.Reader, bool) {
	if g.stdin != nil {
		return g.stdin, false
	}
	return os.Stdin, term.IsTerminal(int(os.Stdin.Fd()))
}

func termSize() (uint16, uint16) {
	if w, h, err := term.GetSize(int(os.Stdout.Fd())); err == nil && w > 0 && h > 0 {
		return uint16(w), uint16(h)
	}
	return 80, 24
}

// runTerminal pumps a terminal session until it ends; the shell's exit
// status becomes the command's.
func (g *globals) runTerminal(ctx context.Context, s *client.Session, stdin io.Reader, isTerm, command bool) error {
	if isTerm {
		old, err := term.MakeRaw(int(os.Stdin.Fd()))
		if err == nil {
			defer term.Restore(int(os.Stdin.Fd()), old)
		}
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for range winch {
				_ = s.Resize(termSize())
			}
		}()
	}
	if isTerm || !command {
		go pumpInput(s, stdin, isTerm)
	}
	out := make(chan error, 1)
	go func() {
		_, err := io.Copy(g.stdout, s)
		out <- err
	}()
	select {
	case <-ctx.Done():
		s.End()
	case <-s.Done():
	}
	<-out
	e := s.Ended()
	if isTerm {
		fmt.Fprintf(g.stderr, "\r\n")
	}
	if e.ExitCode != nil {
		if *e.ExitCode != 0 {
			return exitError(*e.ExitCode)
		}
		return nil
	}
	fmt.Fprintf(g.stderr, "session %s ended: %s\n", s.Info.ID, e.Reason)
	if e.Abnormal {
		return exitError(255)
	}
	return nil
}

// pumpInput sends stdin to the session. On a terminal, Enter ~ . ends the
// session; elsewhere the end of input is sent as Ctrl-D.
func pumpInput(s *client.Session, in io.Reader, isTerm bool) {
	buf := make([]byte, 4096)
	state := 1 // 1: at the start of a line; 2: after "~" there
	for {
		n, err := in.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if isTerm {
				for _, b := range chunk {
					switch {
					case state == 2 && b == '.':
						s.End()
						return
					case state == 1 && b == '~':
						state = 2
						continue
					case state == 2:
						if _, err := s.Write([]byte{'~'}); err != nil {
							return
						}
					}
					state = 0
					if b == '\r' || b == '\n' {
						state = 1
					}
					if _, err := s.Write([]byte{b}); err != nil {
						return
					}
				}
			} else if _, err := s.Write(chunk); err != nil {
				return
			}
		}
		if err != nil {
			if !isTerm {
				_, _ = s.Write([]byte{4}) // Ctrl-D
			}
			return
		}
	}
}

func newSessionTunnelCmd(g *globals) *cobra.Command {
	var port int
	var local string
	cmd := &cobra.Command{
		Use:   "tunnel CLIENT --port PORT [--local ADDR]",
		Short: "Forward a local TCP port to a port on a client's loopback",
		Long: `Listen on --local and carry every connection made to it, through the site, to
--port on the client's own loopback (127.0.0.1): VNC (5900), RDP (3389) or SSH
(22) of a machine that is not reachable directly. Only ports in the client's
remoteTools.tunnelPorts are allowed, with full access. Each connection is a
session of its own: authorised, audited, and its bytes counted. Before
anything listens, the site's session broker is asked whether it would allow
the tunnel (the decision each connection gets, without a session): a tunnel
it refuses (your role, the client's settings: remote tools off, the port not
listed; not a permitted viewer; a client you may not see) is refused then,
with its reason. A client that is only offline gives a warning, and the
tunnel listens for when it is back. Stop with Ctrl-C.`,
		Example: `  steward session tunnel web-01 --port 5900 --local 127.0.0.1:5901 &
  vncviewer 127.0.0.1:5901
  steward session tunnel db-01 --port 22 --local 127.0.0.1:2222`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if port < 1 || port > 65535 {
				return fmt.Errorf("--port %d: a port is 1 to 65535", port)
			}
			if local == "" {
				local = fmt.Sprintf("127.0.0.1:%d", port)
			}
			return g.withSession(cmd, func(ctx context.Context, c *client.Client) error {
				if err := g.tunnelAllowed(ctx, c, args[0], port); err != nil {
					return err
				}
				ln, err := net.Listen("tcp", local)
				if err != nil {
					return fmt.Errorf("--local: %w", err)
				}
				defer ln.Close()
				fmt.Fprintf(g.stderr, "forwarding %s to port %d of %s; Ctrl-C stops\n", ln.Addr(), port, args[0])
				return ServeTunnel(ctx, c, ln, args[0], port, g.stderr)
			})
		},
	}
	cmd.Flags().IntVar(&port, "port", 0, "the port on the client's loopback (required)")
	cmd.Flags().StringVar(&local, "local", "", "where to listen here (default 127.0.0.1:PORT)")
	_ = cmd.MarkFlagRequired("port")
	return cmd
}

// tunnelAllowed asks the broker, before anything listens, whether it
// would authorise a tunnel to port of the client ref for this operator:
// the decision of every connection's session (role, the client's policy,
// Permitted Viewers), without a session; a client outside the operator's
// scope is not found, as a missing one. A client that is only offline is
// not refused: the tunnel listens, with a warning, for when it is back.
func (g *globals) tunnelAllowed(ctx context.Context, c *client.Client, ref string, port int) error {
	cctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	_, err := c.SessionCheck(cctx, ref, contracts.SessionTunnel, port)
	if contracts.CodeOf(err) == contracts.CodeClientOffline {
		fmt.Fprintf(g.stderr, "warning: %v: connections are refused until it is back\n", err)
		return nil
	}
	return err
}

// ServeTunnel accepts connections on ln until ctx ends, each carried by a
// tunnel session of its own.
func ServeTunnel(ctx context.Context, c *client.Client, ln net.Listener, ref string, port int, log io.Writer) error {
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Go(func() {
			defer conn.Close()
			s, err := c.SessionOpen(ctx, contracts.SessionOpenRequest{Ref: ref, Kind: contracts.SessionTunnel, Port: port})
			if err != nil {
				fmt.Fprintf(log, "connection from %s refused: %v\n", conn.RemoteAddr(), err)
				return
			}
			Splice(conn.(*net.TCPConn), s)
		})
	}
}

// Splice carries a TCP connection over a tunnel session until both sides
// are done, or the session ends.
func Splice(conn *net.TCPConn, s *client.Session) {
	var wg sync.WaitGroup
	wg.Go(func() {
		_, _ = io.Copy(s, conn)
		_ = s.CloseWrite()
	})
	wg.Go(func() {
		_, _ = io.Copy(conn, s)
		_ = conn.CloseWrite()
	})
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.End()
	case <-s.Done():
		conn.Close()
		<-done
	}
}

func newSessionListCmd(g *globals) *cobra.Command {
	var clientRef string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List active sessions",
		Long: `List the sessions that are not over (requested, or active), newest first, on
clients where you hold Session:Read. -o json gives an array of session objects.`,
		Example: `  steward session list
  steward session list --client web-01 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				ss, err := c.SessionList(ctx, clientRef)
				if err != nil {
					return err
				}
				return g.print(ss, func(w io.Writer) { sessionsTable(w, ss, false) })
			})
		},
	}
	cmd.Flags().StringVar(&clientRef, "client", "", "only sessions of this client (name or ID)")
	return cmd
}

func sessionsTable(w io.Writer, ss []contracts.SessionInfo, ended bool) {
	if ended {
		fmt.Fprintln(w, "ID\tCLIENT\tOPERATOR\tKIND\tACCESS\tSTARTED\tDURATION\tBYTES IN/OUT\tEND")
	} else {
		fmt.Fprintln(w, "ID\tCLIENT\tOPERATOR\tKIND\tACCESS\tSTATE\tSTARTED\tPARTICIPANTS")
	}
	for _, s := range ss {
		kind := s.Kind
		if s.Kind == contracts.SessionTunnel {
			kind = fmt.Sprintf("tunnel:%d", s.Port)
		}
		if ended {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\n", s.ID, s.Client.Name, s.Operator, kind, s.Access,
				ago(s.Started), s.Ended.Sub(s.Started).Round(time.Second), s.BytesIn, s.BytesOut, s.EndReason)
			continue
		}
		var parts []string
		for _, p := range s.Participants {
			if p.Left.IsZero() {
				parts = append(parts, p.Operator+"("+p.Access+")")
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Client.Name, s.Operator, kind, s.Access, s.State, ago(s.Started), strings.Join(parts, ","))
	}
}

func newSessionJoinCmd(g *globals) *cobra.Command {
	var observe bool
	cmd := &cobra.Command{
		Use:   "join SESSION [--observe]",
		Short: "Join another operator's running session, or watch it",
		Long: `Join a running terminal session: you see what its operator sees and, with full
access, may type too. With --observe you only watch (view access is enough,
and the client drops anything you type). Joining needs Session:Join and the
same three conditions as opening a session. Leave with Enter ~ . ; the session
goes on for the others.`,
		Example: `  steward session list
  steward session join 01935c1e-7a2b-7c3d-9e4f-5a6b7c8d9e0f --observe`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withSession(cmd, func(ctx context.Context, c *client.Client) error {
				s, err := c.SessionJoin(ctx, args[0], observe)
				if err != nil {
					return err
				}
				stdin, isTerm := g.input()
				if observe {
					stdin = strings.NewReader("")
				}
				return g.runTerminal(ctx, s, stdin, isTerm, observe)
			})
		},
	}
	cmd.Flags().BoolVar(&observe, "observe", false, "watch only (read-only)")
	return cmd
}

func newSessionEndCmd(g *globals) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "end SESSION",
		Short: "End a session",
		Long: `End a session: your own, or another operator's when you hold Session:End on
its client (Full and Operations Administrators do). The client stops the
shell or closes the tunnel, and the end is audited with your name.`,
		Example: `  steward session end 01935c1e-7a2b-7c3d-9e4f-5a6b7c8d9e0f --reason "maintenance window over"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				s, err := c.SessionEnd(ctx, args[0], reason)
				if err != nil {
					return err
				}
				return g.print(s, func(w io.Writer) { fmt.Fprintf(w, "session %s ended: %s\n", s.ID, s.EndReason) })
			})
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit")
	return cmd
}

func newSessionRecordingsCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "recordings",
		Short: "List and play session recordings",
		Long: `Every terminal session is recorded as asciicast v2 (the format of asciinema);
tunnels keep their byte counts. Needs Session:ViewRecording on the client.`,
		Example: `  steward session recordings list --client web-01
  steward session recordings --help     # play and export`,
	}
	var clientRef string
	list := &cobra.Command{
		Use:     "list",
		Short:   "List ended sessions and their recordings",
		Example: "  steward session recordings list\n  steward session recordings list --client web-01 -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.withClient(cmd, func(ctx context.Context, c *client.Client) error {
				ss, err := c.SessionRecordings(ctx, clientRef)
				if err != nil {
					return err
				}
				return g.print(ss, func(w io.Writer) { sessionsTable(w, ss, true) })
			})
		},
	}
	list.Flags().StringVar(&clientRef, "client", "", "only sessions of this client (name or ID)")
	var raw bool
	var speed float64
	play := &cobra.Command{
		Use:   "play SESSION",
		Short: "Play a recording in this terminal, or write it out (--raw)",
		Long: `Play a terminal session's recording here, at its own pace (--speed 2 plays
twice as fast; 0 prints it at once). --raw writes the asciicast v2 file
itself, for asciinema or for keeping:

  steward session recordings play ID --raw > session.cast && asciinema play session.cast`,
		Example: "  steward session recordings play 01935c1e-7a2b-7c3d-9e4f-5a6b7c8d9e0f --speed 4",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if speed < 0 {
				return fmt.Errorf("--speed %v: must be 0 or more", speed)
			}
			return g.withSession(cmd, func(ctx context.Context, c *client.Client) error {
				if raw {
					_, err := c.SessionRecording(ctx, args[0], g.stdout)
					return err
				}
				pr, pw := io.Pipe()
				errc := make(chan error, 1)
				go func() {
					_, err := c.SessionRecording(ctx, args[0], pw)
					pw.CloseWithError(err)
					errc <- err
				}()
				if err := PlayCast(ctx, pr, g.stdout, speed); err != nil {
					pr.CloseWithError(err)
					if rerr := <-errc; rerr != nil {
						return rerr
					}
					return err
				}
				return <-errc
			})
		},
	}
	play.Flags().BoolVar(&raw, "raw", false, "write the asciicast v2 file instead of playing it")
	play.Flags().Float64Var(&speed, "speed", 1, "playback speed; 0 writes the output at once")
	cmd.AddCommand(list, play)
	return cmd
}

// PlayCast plays an asciicast v2 stream to w: output events at their time
// divided by speed (speed 0: at once).
func PlayCast(ctx context.Context, r io.Reader, w io.Writer, speed float64) error {
	dec := json.NewDecoder(r)
	var hdr struct {
		Version int `json:"version"`
	}
	if err := dec.Decode(&hdr); err != nil {
		return fmt.Errorf("recording: not asciicast: %w", err)
	}
	if hdr.Version != 2 {
		return fmt.Errorf("recording: asciicast version %d, want 2", hdr.Version)
	}
	start := time.Now()
	for {
		var ev []json.RawMessage
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("recording: bad event: %w", err)
		}
		if len(ev) != 3 {
			return fmt.Errorf("recording: an event has %d fields, want 3", len(ev))
		}
		var at float64
		var kind, text string
		if json.Unmarshal(ev[0], &at) != nil || json.Unmarshal(ev[1], &kind) != nil || json.Unmarshal(ev[2], &text) != nil {
			return errors.New("recording: bad event")
		}
		if kind != "o" {
			continue
		}
		if speed > 0 {
			due := start.Add(time.Duration(at / speed * float64(time.Second)))
			select {
			case <-time.After(time.Until(due)):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if _, err := io.WriteString(w, text); err != nil {
			return err
		}
	}
}

// ExitCode is the exit status a command chose (a remote command's own),
// when err carries one.
func ExitCode(err error) (int, bool) {
	var ee exitError
	if errors.As(err, &ee) {
		return int(ee), true
	}
	return 0, false
}
