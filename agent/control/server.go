package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Handler answers one verb. The answer is written as one JSON line and must
// carry a "type" field (every contracts message does through its Header).
type Handler func(ctx context.Context, args []string) (any, error)

// Handlers maps each verb to its handler.
type Handlers map[string]Handler

// StreamHandler serves a streaming verb: after the request line the
// connection is the handler's, without the request deadline, until it
// returns (the server then closes it; it also closes it when the server
// stops). The handler writes the first answer line; the client sends
// nothing more before it has read that line (Stream does so), so nothing
// the client sent is left in the server's buffer.
type StreamHandler func(ctx context.Context, args []string, conn net.Conn)

// requestTimeout bounds how long a client may take to send a request and
// read its answer.
const requestTimeout = 10 * time.Second

// Server serves the control socket.
type Server struct {
	path     string
	ln       net.Listener
	handlers Handlers
	streams  map[string]StreamHandler
	log      *slog.Logger

	wg        sync.WaitGroup
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Listen binds the control socket at path with mode 0600. A stale socket
// left by an agent that died is removed; a socket on which another agent
// still answers, or a path that is not a socket, is refused.
func Listen(path string, handlers Handlers, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := checkPath(path); err != nil {
		return nil, err
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return &Server{path: path, ln: ln, handlers: handlers, streams: map[string]StreamHandler{}, log: log, done: make(chan struct{})}, nil
}

// HandleStream registers a streaming verb. Call it before Serve.
func (s *Server) HandleStream(verb string, h StreamHandler) { s.streams[verb] = h }

func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("control socket %s exists and is not a socket; remove it", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("control socket %s is in use by another steward-agent", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("remove stale control socket: %w", err)
	}
	return nil
}

// Path is where the socket listens.
func (s *Server) Path() string { return s.path }

// Serve answers connections until ctx is done or Close is called, then
// closes the connections still open, waits for their handlers and returns.
func (s *Server) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-ctx.Done():
		case <-s.done:
		}
		cancel()
		s.Close()
	}()
	err := s.accept(ctx)
	cancel()
	s.wg.Wait()
	return err
}

func (s *Server) accept(ctx context.Context) error {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("control socket: %w", err)
		}
		s.wg.Go(func() { s.serveConn(ctx, c) })
	}
}

// Close stops listening and removes the socket file; Serve then returns.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.closeErr = s.ln.Close()
	})
	return s.closeErr
}

func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	r := bufio.NewScanner(c)
	r.Buffer(make([]byte, 0, 256), maxRequestBytes)
	w := bufio.NewWriter(c)
	for {
		_ = c.SetDeadline(time.Now().Add(requestTimeout))
		if !r.Scan() {
			if err := r.Err(); err != nil && !errors.Is(err, net.ErrClosed) {
				s.log.Debug("control connection ended", "err", err)
				if errors.Is(err, bufio.ErrTooLong) {
					s.write(w, ErrorAnswer{Type: TypeError, Error: fmt.Sprintf("request longer than %d bytes", maxRequestBytes)})
				}
			}
			return
		}
		if fields := strings.Fields(r.Text()); len(fields) > 0 && s.streams[fields[0]] != nil {
			_ = c.SetDeadline(time.Time{})
			s.stream(ctx, fields[0], fields[1:], c)
			return
		}
		answer := s.dispatch(ctx, r.Text())
		if err := s.write(w, answer); err != nil {
			s.log.Debug("control answer not delivered", "err", err)
			return
		}
	}
}

func (s *Server) dispatch(ctx context.Context, line string) (answer any) {
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return ErrorAnswer{Type: TypeError, Error: "empty request; send a verb such as \"status\""}
	}
	verb, args := fields[0], fields[1:]
	h, ok := s.handlers[verb]
	if !ok {
		return ErrorAnswer{Type: TypeError, Error: fmt.Sprintf("unknown verb %q (known: %s)", verb, strings.Join(s.verbs(), ", "))}
	}
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("control handler panicked", "verb", verb, "panic", r)
			answer = ErrorAnswer{Type: TypeError, Error: fmt.Sprintf("%s failed inside the agent", verb)}
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	v, err := h(ctx, args)
	if err != nil {
		return ErrorAnswer{Type: TypeError, Error: err.Error()}
	}
	return v
}

// stream runs a streaming verb's handler on c.
func (s *Server) stream(ctx context.Context, verb string, args []string, c net.Conn) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("control stream handler panicked", "verb", verb, "panic", r)
		}
	}()
	s.streams[verb](ctx, args, c)
}

func (s *Server) verbs() []string {
	out := make([]string, 0, len(s.handlers)+len(s.streams))
	for v := range s.handlers {
		out = append(out, v)
	}
	for v := range s.streams {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

func (s *Server) write(w *bufio.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(ErrorAnswer{Type: TypeError, Error: "encode answer: " + err.Error()})
	}
	b = append(b, '\n')
	if _, err := w.Write(b); err != nil {
		return err
	}
	return w.Flush()
}
