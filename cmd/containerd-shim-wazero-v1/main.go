// Command containerd-shim-wazero-v1 is wasmkube's built-in containerd shim (runtime_type
// io.containerd.wazero.v1): it runs WASI preview1 modules with wazero. See internal/wazeroshim.
// Like every containerd shim it prints its version for -v (and --version) and exits; the node-installer
// runs that to prove the binary executes on the node.
package main

import (
	"context"

	containerdversion "github.com/containerd/containerd/v2/version"

	"github.com/wasmkube/wasmkube/internal/version"
	"github.com/wasmkube/wasmkube/internal/wazeroshim"
)

func main() {
	// containerd's shim package prints these for -v: report wasmkube's build, not the containerd
	// library's.
	v := version.Get()
	containerdversion.Version, containerdversion.Revision = v.Version, v.Revision
	wazeroshim.Run(context.Background())
}
