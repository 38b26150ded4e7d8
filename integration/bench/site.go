package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stewardhq/steward/services/client"
)

// Site is a `steward serve` process on a data dir of its own.
type Site struct {
	Bin, Dir, Listen string
	Args             []string // more `steward serve` flags
	DebugAddr        string   // the site's profiler (--debug-listen), if any
	cmd              *exec.Cmd
	stopped          bool // Stop (or the process's end) was seen
	done             chan error
	log              *os.File
}

// StartSite runs bin serve on dir and waits until its services answer.
func StartSite(ctx context.Context, bin, dir string, args ...string) (*Site, error) {
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s := &Site{Bin: bin, Dir: dir, Listen: listen, Args: args}
	return s, s.start(ctx)
}

// freeAddr is a loopback address with a port nobody listens on.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func (s *Site) start(ctx context.Context) error {
	if err := s.launch(); err != nil {
		return err
	}
	return s.ready(ctx, time.Minute)
}

// launch starts the process without waiting for it to serve.
func (s *Site) launch() error {
	logf, err := os.OpenFile(filepath.Join(s.Dir, "..", filepath.Base(s.Dir)+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	s.log = logf
	s.cmd = exec.Command(s.Bin, append([]string{"serve", "--data", s.Dir, "--listen", s.Listen, "--log-level", "warn"}, s.Args...)...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.Bin, err)
	}
	s.stopped = false
	s.done = make(chan error, 1)
	go func() {
		err := s.cmd.Wait()
		// Say in the site's log how the process ended (a signal leaves no
		// line of its own).
		fmt.Fprintf(logf, "bench: steward serve (pid %d) ended: %v (%s)\n", s.cmd.Process.Pid, err, s.cmd.ProcessState)
		s.done <- err
	}()
	return nil
}

// ready waits up to limit until the site's services answer an operator.
func (s *Site) ready(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := s.Operator(ctx)
		if err == nil {
			_, err = c.SiteServices(ctx)
			c.Close()
			if err == nil {
				return nil
			}
		}
		select {
		case err := <-s.done:
			s.stopped = true
			s.log.Close()
			return fmt.Errorf("steward serve exited: %v (log: %s)", err, s.log.Name())
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("site not ready after %s: %v", limit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// URL is the site's NATS URL.
func (s *Site) URL() string { return "nats://" + s.Listen }

// Operator connects as the bootstrap administrator.
func (s *Site) Operator(ctx context.Context) (*client.Client, error) {
	return client.Connect(ctx, client.Options{Server: s.URL(), Identity: filepath.Join(s.Dir, "admin.nk"), Timeout: 5 * time.Second})
}

// Token creates an enrollment token with uses.
func (s *Site) Token(ctx context.Context, uses int) (string, error) {
	c, err := s.Operator(ctx)
	if err != nil {
		return "", err
	}
	defer c.Close()
	tok, _, err := c.TokensCreate(ctx, 2*time.Hour, uses, "benchmark")
	return tok, err
}

// Stop ends the process with SIGTERM (a clean shutdown) and waits; a
// stopped site stays stopped.
func (s *Site) Stop() error {
	if s.cmd == nil || s.cmd.Process == nil || s.stopped {
		return nil
	}
	s.stopped = true
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.log.Close()
	return nil
}

// Restart stops the site and starts it again on the same data dir and port.
func (s *Site) Restart(ctx context.Context) error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.start(ctx)
}

// RSS is the resident memory of the site process, in bytes.
func (s *Site) RSS() (uint64, error) { return rssOf(s.cmd.Process.Pid) }

func rssOf(pid int) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}
