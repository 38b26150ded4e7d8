// Command steward is the Steward site server (`steward serve`) and the
// operator CLI (`steward <noun> <verb>`).
package main

import (
	"os"

	"github.com/stewardhq/steward/services/cli"
)

func main() { os.Exit(cli.Execute()) }
