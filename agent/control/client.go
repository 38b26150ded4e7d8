package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/stewardhq/steward/contracts"
)

// Call sends one request (verb and args) to the agent at path and decodes the
// answer into out, which must be the answer type of verb. A failure answer
// becomes an error; an absent or dead agent is ErrNotRunning.
func Call(ctx context.Context, path, verb string, args []string, out any) error {
	if err := checkPath(path); err != nil {
		return err
	}
	for _, a := range append([]string{verb}, args...) {
		if a == "" || strings.ContainsAny(a, " \t\r\n") {
			return fmt.Errorf("control request word %q is empty or contains whitespace", a)
		}
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
			return fmt.Errorf("%w (%s)", ErrNotRunning, path)
		case errors.Is(err, fs.ErrPermission):
			return fmt.Errorf("control socket %s: permission denied; run as the user that runs the agent", path)
		}
		return fmt.Errorf("control socket: %w", err)
	}
	defer c.Close()
	deadline := time.Now().Add(requestTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()

	if _, err := fmt.Fprintf(c, "%s\n", strings.Join(append([]string{verb}, args...), " ")); err != nil {
		return fmt.Errorf("control socket: send %s: %w", verb, err)
	}
	r := bufio.NewScanner(c)
	r.Buffer(make([]byte, 0, 4096), maxAnswerBytes)
	if !r.Scan() {
		err := r.Err()
		if err == nil {
			err = errors.New("the agent closed the connection without answering")
		}
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("the answer is longer than %d MiB (%w)", maxAnswerBytes>>20, err)
		}
		return fmt.Errorf("control socket: %s: %w", verb, err)
	}
	line := r.Bytes()
	var head ErrorAnswer
	if err := json.Unmarshal(line, &head); err != nil {
		return fmt.Errorf("control socket: %s: malformed answer: %w", verb, err)
	}
	if head.Type == TypeError {
		return fmt.Errorf("agent: %s", head.Error)
	}
	if err := json.Unmarshal(line, out); err != nil {
		return fmt.Errorf("control socket: %s: malformed answer: %w", verb, err)
	}
	return nil
}

// Status asks the agent at path for its status.
func Status(ctx context.Context, path string) (contracts.AgentStatus, error) {
	var st contracts.AgentStatus
	if err := Call(ctx, path, VerbStatus, nil, &st); err != nil {
		return contracts.AgentStatus{}, err
	}
	if st.Type != contracts.TypeAgentStatus {
		return contracts.AgentStatus{}, fmt.Errorf("control socket: status answer has type %q, want %q", st.Type, contracts.TypeAgentStatus)
	}
	return st, nil
}

// Stream opens a streaming verb on the agent at path: it sends the request
// and waits for the agent's first answer line, which it returns with the
// connection and a reader of what follows. A failure answer becomes an
// error (and the connection is closed). The caller closes the connection.
func Stream(ctx context.Context, path, verb string, args []string) (net.Conn, *bufio.Reader, []byte, error) {
	if err := checkPath(path); err != nil {
		return nil, nil, nil, err
	}
	for _, a := range append([]string{verb}, args...) {
		if a == "" || strings.ContainsAny(a, " \t\r\n") {
			return nil, nil, nil, fmt.Errorf("control request word %q is empty or contains whitespace", a)
		}
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
			return nil, nil, nil, fmt.Errorf("%w (%s)", ErrNotRunning, path)
		case errors.Is(err, fs.ErrPermission):
			return nil, nil, nil, fmt.Errorf("control socket %s: permission denied; run as the user that runs the agent", path)
		}
		return nil, nil, nil, fmt.Errorf("control socket: %w", err)
	}
	fail := func(err error) (net.Conn, *bufio.Reader, []byte, error) {
		c.Close()
		return nil, nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	if _, err := fmt.Fprintf(c, "%s\n", strings.Join(append([]string{verb}, args...), " ")); err != nil {
		return fail(fmt.Errorf("control socket: send %s: %w", verb, err))
	}
	r := bufio.NewReaderSize(c, 64<<10)
	line, err := readLine(r)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fail(fmt.Errorf("control socket: %s: %w", verb, err))
	}
	var head ErrorAnswer
	if err := json.Unmarshal(line, &head); err != nil {
		return fail(fmt.Errorf("control socket: %s: malformed answer: %w", verb, err))
	}
	if head.Type == TypeError {
		return fail(fmt.Errorf("agent: %s", head.Error))
	}
	_ = c.SetDeadline(time.Time{})
	return c, r, line, nil
}

// readLine reads one line of at most maxAnswerBytes, without its newline.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxAnswerBytes {
			return nil, fmt.Errorf("a line longer than %d bytes", maxAnswerBytes)
		}
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) == 0:
			return nil, errors.New("the agent closed the connection without answering")
		default:
			return nil, err
		}
	}
}

// ReadLine reads one line of a stream (see Stream), without its newline.
func ReadLine(r *bufio.Reader) ([]byte, error) { return readLine(r) }
