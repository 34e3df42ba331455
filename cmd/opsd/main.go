// Command opsd is the Ops Control Room's runbook executor. See `opsd --help`.
package main

import (
	"context"
	"os"

	"github.com/opscontrolroom/opsd/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:]))
}
