// Command containerd-shim-wazero-v1 is wasmkube's built-in containerd shim (runtime_type
// io.containerd.wazero.v1): it runs WASI preview1 modules with wazero. See internal/wazeroshim.
package main

import (
	"context"

	"github.com/wasmkube/wasmkube/internal/wazeroshim"
)

func main() { wazeroshim.Run(context.Background()) }
