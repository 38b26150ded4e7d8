package sessions

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stewardhq/steward/contracts"
)

// recorder writes a terminal session as asciicast v2
// (https://docs.asciinema.org/manual/asciicast/v2/) straight into the
// recordings object store while the session runs: a header line, then one
// JSON array per event ([seconds, "o", text] for output, [seconds, "r",
// "COLSxROWS"] for a resize). Nothing is held in memory beyond a write
// buffer; the object is complete when close returns.
type recorder struct {
	mu      sync.Mutex
	start   time.Time
	pw      *io.PipeWriter
	w       *bufio.Writer
	tail    []byte // an incomplete UTF-8 sequence at the end of the last output
	done    chan error
	failed  error
	written int64
}

var errAborted = errors.New("session refused: recording discarded")

// recordingName is the object of a session's recording.
func recordingName(session string) string { return session + ".cast" }

type castHeader struct {
	Version   int               `json:"version"`
	Width     uint16            `json:"width"`
	Height    uint16            `json:"height"`
	Timestamp int64             `json:"timestamp"`
	Title     string            `json:"title,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
}

func (s *Service) startRecorder(info contracts.SessionInfo, cols, rows uint16, term string) *recorder {
	if cols == 0 {
		cols = 80
	}
	if rows == 0 {
		rows = 24
	}
	if term == "" {
		term = "xterm-256color"
	}
	pr, pw := io.Pipe()
	r := &recorder{start: time.Now(), pw: pw, w: bufio.NewWriterSize(pw, 32<<10), done: make(chan error, 1)}
	meta := jetstream.ObjectMeta{
		Name:        recordingName(info.ID),
		Description: fmt.Sprintf("%s session of %s to %s", info.Kind, info.Operator, info.Client.Name),
		Headers:     map[string][]string{"Steward-Session": {info.ID}, "Content-Type": {"application/x-asciicast"}},
	}
	go func() {
		_, err := s.obs.Put(context.Background(), meta, pr)
		pr.CloseWithError(err)
		r.done <- err
	}()
	h, _ := json.Marshal(castHeader{Version: 2, Width: cols, Height: rows, Timestamp: r.start.Unix(),
		Title: fmt.Sprintf("%s@%s (%s)", info.Operator, info.Client.Name, info.ID), Env: map[string]string{"TERM": term}})
	r.line(h)
	return r
}

// line writes one line; after a failure it writes nothing more.
func (r *recorder) line(b []byte) {
	if r.failed != nil {
		return
	}
	if _, err := r.w.Write(append(b, '\n')); err != nil {
		r.failed = err
	}
	r.written += int64(len(b) + 1)
}

func (r *recorder) event(kind, text string) {
	ev, _ := json.Marshal([]any{json.Number(fmt.Sprintf("%.6f", time.Since(r.start).Seconds())), kind, text})
	r.line(ev)
}

// output records terminal output. A multi-byte character split between
// two frames is kept whole: the split-off start waits for the next frame.
func (r *recorder) output(b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	data := append(r.tail, b...)
	cut := len(data)
	for i := 1; i <= 3 && i <= len(data); i++ {
		c := data[len(data)-i]
		if c < 0x80 {
			break
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(data[len(data)-i:]) {
				cut = len(data) - i
			}
			break
		}
	}
	r.tail = append([]byte(nil), data[cut:]...)
	if cut > 0 {
		r.event("o", string(data[:cut]))
	}
}

func (r *recorder) resize(z contracts.SessionResize) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.event("r", fmt.Sprintf("%dx%d", z.Cols, z.Rows))
}

// close finishes the recording and waits until the object is stored.
func (r *recorder) close() error {
	r.mu.Lock()
	if len(r.tail) > 0 {
		r.event("o", string(r.tail))
		r.tail = nil
	}
	err := r.failed
	if err == nil {
		err = r.w.Flush()
	}
	r.mu.Unlock()
	if err != nil {
		r.pw.CloseWithError(err)
		<-r.done
		return err
	}
	r.pw.Close()
	return <-r.done
}

// abort discards the recording (the session never started).
func (r *recorder) abort() {
	r.pw.CloseWithError(errAborted)
	<-r.done
}
