//go:build !unix

package agent

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
)

// AssistOptions configures Assist.
type AssistOptions struct {
	StateDir string
	User     string
	Message  string
	Shell    string
	In       *os.File
	Out      io.Writer
}

// Assist shares a terminal for assistance; it needs a PTY, which this
// agent has only on Unix systems.
func Assist(ctx context.Context, o AssistOptions) error {
	return fmt.Errorf("steward-agent assist is not supported on %s", runtime.GOOS)
}
