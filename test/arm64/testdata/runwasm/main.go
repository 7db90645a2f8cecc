// Command runwasm runs a Wasm command module through the wazero shim's run path (internal/wazerorun:
// Prepare, Compile, Run), as the shim runs a container's module, with the guest's stdout and stderr as
// its own, and exits with the guest's exit code. Usage: runwasm MODULE [ARGS...]; the guest's argv is
// MODULE ARGS. test/arm64 builds it for linux/arm64 and runs it under qemu-user.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/wasmkube/wasmkube/internal/wazerorun"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: runwasm MODULE [ARGS...]")
		os.Exit(2)
	}
	code, err := run(context.Background(), os.Args[1], os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "runwasm:", err)
		os.Exit(125)
	}
	os.Exit(code)
}

func run(ctx context.Context, file string, args []string) (int, error) {
	wasm, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	m, err := wazerorun.Prepare(ctx, wazerorun.Options{})
	if err != nil {
		return 0, err
	}
	defer m.Close(ctx)
	if err := m.Compile(ctx, wasm); err != nil {
		return 0, err
	}
	res, err := m.Run(ctx, wazerorun.Process{Args: args, Stdout: os.Stdout, Stderr: os.Stderr})
	return res.ExitCode, err
}
