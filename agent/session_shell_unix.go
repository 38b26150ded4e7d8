//go:build unix

package agent

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"github.com/stewardhq/steward/contracts"
)

// defaultTerm is TERM when the grant names none.
const defaultTerm = "xterm-256color"

// startShell starts a shell session's process in a PTY: the grant's
// command, or a login shell (Config.SessionShell -l), with TERM from the
// grant and its initial size.
func (a *Agent) startShell(g *contracts.SessionGrant) (backend, error) {
	what := "shell"
	var cmd *exec.Cmd
	if len(g.Command) > 0 {
		what = "command"
		cmd = exec.Command(g.Command[0], g.Command[1:]...)
	} else {
		cmd = exec.Command(a.cfg.SessionShell, "-l")
	}
	term := g.Term
	if term == "" {
		term = defaultTerm
	}
	cmd.Env = append(sessionEnv(os.Environ()), "TERM="+term, "STEWARD_SESSION="+g.Session, "STEWARD_OPERATOR="+g.Operator)
	cmd.Dir = "/"
	if home, err := os.UserHomeDir(); err == nil {
		if fi, err := os.Stat(home); err == nil && fi.IsDir() {
			cmd.Dir = home
		}
	}
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: orDefault(g.Cols, 80), Rows: orDefault(g.Rows, 24)})
	if err != nil {
		return nil, fmt.Errorf("the %s %q could not start: %w", what, cmd.Args[0], err)
	}
	return newPTYBackend(cmd, f, what), nil
}

// sessionEnv is the agent's environment for a session's process, without
// the agent's own settings (an enrollment token in particular) and TERM.
func sessionEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if strings.HasPrefix(kv, "STEWARD_") || strings.HasPrefix(kv, "TERM=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func orDefault(v, def uint16) uint16 {
	if v == 0 {
		return def
	}
	return v
}

// ptyBackend is a process in a PTY as a session backend: output is what
// the process writes to the terminal, input is typed into it.
type ptyBackend struct {
	cmd    *exec.Cmd
	pty    *os.File
	what   string // "shell" or "command", for the end reason
	done   chan contracts.SessionEnd
	exited chan struct{}
	once   sync.Once
}

func newPTYBackend(cmd *exec.Cmd, f *os.File, what string) *ptyBackend {
	b := &ptyBackend{cmd: cmd, pty: f, what: what, done: make(chan contracts.SessionEnd, 1), exited: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		close(b.exited)
		b.done <- exitEnd(what, cmd.ProcessState, err)
	}()
	return b
}

// exitEnd says how a session's process ended.
func exitEnd(what string, ps *os.ProcessState, err error) contracts.SessionEnd {
	if ps == nil {
		return contracts.SessionEnd{Reason: fmt.Sprintf("the %s could not be waited for: %v", what, err), By: "client", Abnormal: true}
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return contracts.SessionEnd{Reason: fmt.Sprintf("the %s was killed by signal %s", what, ws.Signal()), By: "client"}
	}
	code := ps.ExitCode()
	return contracts.SessionEnd{Reason: fmt.Sprintf("the %s exited with status %d", what, code), By: "client", ExitCode: &code}
}

func (b *ptyBackend) Read(p []byte) (int, error) {
	n, err := b.pty.Read(p)
	if err != nil && errors.Is(err, syscall.EIO) {
		err = fmt.Errorf("the terminal closed: %w", err) // every process holding it is gone
	}
	return n, err
}

func (b *ptyBackend) Write(p []byte) (int, error) { return b.pty.Write(p) }

func (b *ptyBackend) Resize(cols, rows uint16) error {
	return pty.Setsize(b.pty, &pty.Winsize{Cols: cols, Rows: rows})
}

func (b *ptyBackend) CloseWrite() error { return nil }

func (b *ptyBackend) Done() <-chan contracts.SessionEnd { return b.done }

// Stop hangs up the process group (the process leads its own session),
// kills it if it is still there after killGrace, and closes the PTY.
func (b *ptyBackend) Stop() {
	b.once.Do(func() {
		pid := b.cmd.Process.Pid
		select {
		case <-b.exited:
		default:
			_ = syscall.Kill(-pid, syscall.SIGHUP)
			select {
			case <-b.exited:
			case <-time.After(killGrace):
				_ = syscall.Kill(-pid, syscall.SIGKILL)
				select {
				case <-b.exited:
				case <-time.After(killGrace):
				}
			}
		}
		_ = b.pty.Close()
	})
}
