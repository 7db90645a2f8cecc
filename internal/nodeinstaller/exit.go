package nodeinstaller

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/cli"
	"github.com/wasmkube/wasmkube/internal/installer"
	"github.com/wasmkube/wasmkube/pkg/containerdcfg"
	"github.com/wasmkube/wasmkube/pkg/distro"
)

// FailedResult is the error of a run whose result reports a failure.
type FailedResult struct{ Result installerapi.Result }

func (e FailedResult) Error() string {
	return fmt.Sprintf("%s failed (%s): %s", e.Result.Operation, e.Result.Reason, e.Result.Error)
}

// ExitCode is the node-installer's exit code for a command's error: ExitUsage for a command-line
// mistake (and for a runtime or a containerd version the containerd-config command was not given),
// else the exit code of the result the error stands for (installerapi.Result.ExitCode): a failed run's
// own, a containerd config or host that cannot be handled is permanent, anything else transient.
func ExitCode(err error) int {
	var failed FailedResult
	switch {
	case err == nil, errors.Is(err, cli.ErrHelp):
		return installerapi.ExitOK
	case errors.Is(err, cli.ErrUsage), errors.Is(err, containerdcfg.ErrInvalidRuntime), errors.Is(err, containerdcfg.ErrContainerdVersion):
		return installerapi.ExitUsage
	case errors.As(err, &failed):
		return failed.Result.ExitCode()
	case errors.Is(err, distro.ErrUnknown), errors.Is(err, distro.ErrNotContainerd), errors.Is(err, distro.ErrAmbiguous):
		return installerapi.Result{Reason: installerapi.ReasonDetectFailed}.ExitCode()
	}
	if reason, ok := installer.ConfigReason(err); ok {
		return installerapi.Result{Reason: reason}.ExitCode()
	}
	return installerapi.ExitTransient
}

// writeResultFile writes the encoded result to path (the termination-message file); an empty path
// does nothing. The file is replaced, not appended to, so a retried container reports only its own run.
func writeResultFile(path string, doc []byte) error {
	if path == "" {
		return nil
	}
	if err := os.WriteFile(path, doc, 0o644); err != nil {
		return fmt.Errorf("write result file %s: %w (set --result-file \"\" to disable)", filepath.Clean(path), err)
	}
	return nil
}
