//go:build unix

package agent

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	ossignal "os/signal"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/creack/pty"
	"github.com/stewardhq/steward/agent/control"
	"github.com/stewardhq/steward/contracts"
	"golang.org/x/term"
)

// AssistEscape is the key that starts a command to the assist command
// itself (as telnet's): Ctrl-] then y accepts a helper's offer, n refuses
// it, q ends the helpers' sessions, Ctrl-] again types a Ctrl-].
const AssistEscape = 0x1d

// AssistOptions configures Assist.
type AssistOptions struct {
	StateDir string    // the agent's state dir (required)
	User     string    // who asks for help (required)
	Message  string    // what the user says to the helpers
	Shell    string    // the shell to share (default $SHELL, else /bin/sh)
	In       *os.File  // the user's terminal (default os.Stdin); raw while shared when it is a terminal
	Out      io.Writer // where the terminal shows (default os.Stdout)
}

// Assist is `steward-agent assist`: it asks the site for help through the
// agent, runs a shell in a PTY mirrored to the user's terminal (like
// script(1)) and shares it with the agent, which connects a helper to it,
// until the shell exits or ctx ends.
func Assist(ctx context.Context, o AssistOptions) error {
	if o.StateDir == "" {
		return errors.New("--state-dir is required")
	}
	if o.In == nil {
		o.In = os.Stdin
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Shell == "" {
		if o.Shell = os.Getenv("SHELL"); o.Shell == "" {
			o.Shell = "/bin/sh"
		}
	}
	if len(o.Message) > maxAssistMessage {
		return fmt.Errorf("the message is %d bytes: at most %d", len(o.Message), maxAssistMessage)
	}
	dir, err := filepath.Abs(o.StateDir)
	if err != nil {
		return err
	}
	args := []string{o.User}
	if o.Message != "" {
		args = append(args, base64.RawURLEncoding.EncodeToString([]byte(o.Message)))
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	conn, r, first, err := control.Stream(sctx, control.SocketPath(dir), control.VerbAssist, args)
	cancel()
	if errors.Is(err, control.ErrNotRunning) {
		return fmt.Errorf("no agent is running with state dir %s", dir)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	var ready control.AssistMsg
	if err := json.Unmarshal(first, &ready); err != nil || ready.Type != control.AssistReady {
		return fmt.Errorf("the agent's first answer is not %s: %s", control.AssistReady, first)
	}

	fd := int(o.In.Fd())
	isTerm := term.IsTerminal(fd)
	size := &pty.Winsize{Cols: 80, Rows: 24}
	if isTerm {
		if cols, rows, err := term.GetSize(fd); err == nil && cols > 0 && rows > 0 {
			size = &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)}
		}
	}
	cmd := exec.Command(o.Shell)
	cmd.Env = append(sessionEnv(os.Environ()), "TERM="+termOr(os.Getenv("TERM")), "STEWARD_ASSIST="+ready.Request)
	ptmx, err := pty.StartWithSize(cmd, size)
	if err != nil {
		return fmt.Errorf("start the shell %s: %w", o.Shell, err)
	}
	defer ptmx.Close()
	if isTerm {
		old, err := term.MakeRaw(fd)
		if err != nil {
			_ = cmd.Process.Kill()
			return fmt.Errorf("put the terminal in raw mode: %w", err)
		}
		defer func() { _ = term.Restore(fd, old) }()
		winch := make(chan os.Signal, 1)
		ossignal.Notify(winch, syscall.SIGWINCH)
		defer ossignal.Stop(winch)
		go func() {
			for range winch {
				_ = pty.InheritSize(o.In, ptmx)
			}
		}()
	}

	sh := &share{conn: conn, out: o.Out, ptmx: ptmx, credits: make(chan struct{}, control.AssistCredits),
		input: make(chan []byte, 1), dead: make(chan struct{})}
	for range control.AssistCredits {
		sh.credits <- struct{}{}
	}
	sh.notice("Asked for assistance: %s. Waiting for a helper; Ctrl-] then q ends a helper's session, exiting the shell stops sharing.", ready.Text)

	outDone := make(chan struct{})
	go func() { sh.pumpTerminal(); close(outDone) }()
	go sh.typeInput()
	go sh.readAgent(r)
	go sh.readUser(o.In)

	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-exited:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGHUP)
		werr = <-exited
	}
	select { // the shell's last words
	case <-outDone:
	case <-time.After(2 * time.Second):
	}
	sh.closing.Store(true)
	conn.Close() // the agent ends the helpers' sessions
	how := "the shell exited"
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		how = fmt.Sprintf("the shell exited with status %d", ee.ExitCode())
	}
	sh.notice("Assistance ended: %s.", how)
	return nil
}

func termOr(t string) string {
	if t == "" {
		return defaultTerm
	}
	return t
}

// share is the command's side of a shared terminal.
type share struct {
	conn    net.Conn
	wmu     sync.Mutex // messages to the agent
	omu     sync.Mutex // the user's terminal
	out     io.Writer
	ptmx    *os.File
	credits chan struct{} // AssistOutput messages the agent may still take
	input   chan []byte   // a helper's keys to type (the agent sends one at a time)
	dead    chan struct{} // the agent's connection is gone
	once    sync.Once
	closing atomic.Bool // the command is ending: the agent's goodbye is no news

	pmu    sync.Mutex
	prompt *control.ConsentPrompt // the offer waiting for the user
}

// notice writes a line of the assist command onto the user's terminal.
func (sh *share) notice(format string, args ...any) {
	sh.omu.Lock()
	defer sh.omu.Unlock()
	fmt.Fprintf(sh.out, "\r\n[steward] "+format+"\r\n", args...)
}

func (sh *share) send(m control.AssistMsg) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	sh.wmu.Lock()
	defer sh.wmu.Unlock()
	_, err = sh.conn.Write(append(data, '\n'))
	return err
}

// pumpTerminal shows the shell's output to the user and shares it, one
// credit per message: a helper that lags holds the terminal back.
func (sh *share) pumpTerminal() {
	buf := make([]byte, contracts.MaxFrameBytes)
	for {
		n, err := sh.ptmx.Read(buf)
		if n > 0 {
			sh.omu.Lock()
			_, _ = sh.out.Write(buf[:n])
			sh.omu.Unlock()
			select {
			case <-sh.credits:
				if sh.send(control.AssistMsg{Type: control.AssistOutput, Data: slices.Clone(buf[:n])}) != nil {
					sh.gone()
				}
			case <-sh.dead:
			}
		}
		if err != nil {
			return
		}
	}
}

func (sh *share) gone() { sh.once.Do(func() { close(sh.dead) }) }

// typeInput types a helper's keys into the shell and acknowledges each.
func (sh *share) typeInput() {
	for {
		select {
		case data := <-sh.input:
			if _, err := sh.ptmx.Write(data); err != nil {
				return
			}
			if sh.send(control.AssistMsg{Type: control.AssistInputAck}) != nil {
				return
			}
		case <-sh.dead:
			return
		}
	}
}

// readAgent takes the agent's messages.
func (sh *share) readAgent(r *bufio.Reader) {
	defer sh.gone()
	for {
		line, err := control.ReadLine(r)
		if err != nil {
			if !sh.closing.Load() {
				sh.notice("The agent closed the shared terminal (%v); the shell goes on, no longer shared.", err)
			}
			return
		}
		var m control.AssistMsg
		if json.Unmarshal(line, &m) != nil {
			continue
		}
		switch m.Type {
		case control.AssistOutputAck:
			select {
			case sh.credits <- struct{}{}:
			default:
			}
		case control.AssistInput:
			// Typed by typeInput, so that this loop goes on taking the
			// acks of output while the shell does not read its input.
			select {
			case sh.input <- m.Data:
			default:
				sh.notice("The agent sent input before the last was typed; the terminal is no longer shared.")
				return
			}
		case control.AssistPrompt:
			if p := m.Prompt; p != nil {
				sh.pmu.Lock()
				sh.prompt = p
				sh.pmu.Unlock()
				what := "to help you"
				if p.Join {
					what = "to join the helper's session"
				}
				sh.notice("%s offers %s with %s. Ctrl-] then y accepts, Ctrl-] then n refuses (within %s).",
					p.Operator, what, accessWords(p.Access), time.Until(p.Deadline).Round(time.Second))
			}
		case control.AssistPromptDone:
			sh.pmu.Lock()
			if sh.prompt != nil && sh.prompt.ID == m.Text {
				sh.prompt = nil
			}
			sh.pmu.Unlock()
		case control.AssistConnected:
			sh.notice("%s is connected to this terminal with %s (session %s).", m.Operator, accessWords(m.Access), m.Session)
		case control.AssistEnded:
			sh.notice("The helper's session %s ended: %s.", m.Session, m.Text)
		}
	}
}

// readUser types the user's keys into the shell, except the commands
// after AssistEscape.
func (sh *share) readUser(in io.Reader) {
	buf := make([]byte, 1024)
	esc := false
	for {
		n, err := in.Read(buf)
		fwd := make([]byte, 0, n)
		for _, b := range buf[:n] {
			if !esc && b == AssistEscape {
				esc = true
				continue
			}
			if !esc {
				fwd = append(fwd, b)
				continue
			}
			esc = false
			switch b {
			case 'y', 'Y', 'n', 'N':
				sh.answer(b == 'y' || b == 'Y')
			case 'q', 'Q':
				_ = sh.send(control.AssistMsg{Type: control.AssistEnd})
			case AssistEscape:
				fwd = append(fwd, b)
			default:
				sh.notice("Ctrl-] then: y accepts an offer, n refuses it, q ends the helper's session, Ctrl-] types Ctrl-].")
			}
		}
		if len(fwd) > 0 {
			if _, werr := sh.ptmx.Write(fwd); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (sh *share) answer(accept bool) {
	sh.pmu.Lock()
	p := sh.prompt
	sh.prompt = nil
	sh.pmu.Unlock()
	if p == nil {
		sh.notice("No offer is waiting for an answer.")
		return
	}
	if err := sh.send(control.AssistMsg{Type: control.AssistAnswer, Text: p.ID, Accept: accept}); err != nil {
		sh.notice("The answer could not reach the agent: %v", err)
		return
	}
	if accept {
		sh.notice("You accepted the offer of %s.", p.Operator)
	} else {
		sh.notice("You refused the offer of %s.", p.Operator)
	}
}
