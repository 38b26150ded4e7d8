package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
)

// TestStream: a streaming verb owns its connection after the request
// line: any number of lines each way, long ones too; a failure
// answer is an error; the ordinary verbs still work.
func TestStream(t *testing.T) {
	path := SocketPath(t.TempDir())
	s, err := Listen(path, statusHandlers(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s.HandleStream("echo-stream", func(_ context.Context, args []string, c net.Conn) {
		if len(args) > 0 && args[0] == "refuse" {
			data, _ := json.Marshal(ErrorAnswer{Type: TypeError, Error: "refused"})
			c.Write(append(data, '\n'))
			return
		}
		fmt.Fprintf(c, `{"type":"ready","text":%q}`+"\n", strings.Join(args, ","))
		r := bufio.NewReader(c)
		for {
			line, err := ReadLine(r)
			if err != nil {
				return
			}
			fmt.Fprintf(c, `{"type":"echo","text":%q}`+"\n", strings.ToUpper(string(line)))
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	c, r, first, err := Stream(context.Background(), path, "echo-stream", []string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var m AssistMsg
	if json.Unmarshal(first, &m) != nil || m.Type != "ready" || m.Text != "a,b" {
		t.Fatalf("got first line %s", first)
	}
	for _, word := range []string{"one", "two", strings.Repeat("x", 100000)} {
		fmt.Fprintf(c, "%s\n", word)
		line, err := ReadLine(r)
		if err != nil || json.Unmarshal(line, &m) != nil || m.Text != strings.ToUpper(word) {
			t.Fatalf("echo of %.10s: got %.40s, %v", word, line, err)
		}
	}
	if _, _, _, err := Stream(context.Background(), path, "echo-stream", []string{"refuse"}); err == nil || err.Error() != "agent: refused" {
		t.Fatalf("refused stream: got %v", err)
	}
	if _, err := Status(context.Background(), path); err != nil {
		t.Fatalf("status beside a stream: %v", err)
	}
	var out ErrorAnswer
	if err := Call(context.Background(), path, "nothing", nil, &out); err == nil || !strings.Contains(err.Error(), "echo-stream") {
		t.Fatalf("unknown verb: got %v, want the stream verb listed", err)
	}
	if _, _, _, err := Stream(context.Background(), SocketPath(t.TempDir()), "echo-stream", nil); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("no agent: got %v", err)
	}
}
