// Command opsbench is `opsd bench` with a PostgREST-compatible test server
// for the REST paths when no real PostgREST is given, so that the opsd
// binary links no test machinery. CI runs `opsbench --quick`.
package main

import (
	"context"
	"os"
	"path/filepath"

	"github.com/opscontrolroom/opsd/internal/bench/benchserver"
	"github.com/opscontrolroom/opsd/internal/cli"
)

func main() {
	root := cli.NewBenchCmd(cli.BenchSetup{Use: "opsbench", TestServer: benchserver.PostgREST, Binary: opsdBeside})
	root.SilenceUsage, root.SilenceErrors = true, true
	os.Exit(cli.Execute(context.Background(), root, os.Args[1:]))
}

// opsdBeside is the footprint scenario's default binary: opsd next to this one.
func opsdBeside() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(filepath.Dir(exe), "opsd")
	if _, err := os.Stat(bin); err != nil {
		return "", err
	}
	return bin, nil
}
