// Command steward-agent is the Steward client agent (see package cli).
package main

import (
	"os"

	"github.com/stewardhq/steward/agent/cli"
)

func main() { os.Exit(cli.Execute()) }
