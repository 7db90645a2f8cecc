package v1alpha1

import "fmt"

// RestartMethod says how the installer makes containerd load a changed configuration (the
// node-installer's --restart flag, the manager's --installer-restart and nodeOverrides[].restart).
type RestartMethod string

// Restart methods.
const (
	// RestartSystemd restarts the first active systemd unit of a list with the host's systemctl.
	RestartSystemd RestartMethod = "systemd"
	// RestartSignal terminates containerd and relies on its supervisor to start it again.
	RestartSignal RestartMethod = "signal"
	// RestartNone restarts nothing: the distribution picks up the change itself.
	RestartNone RestartMethod = "none"
)

// RestartMethods lists every restart method.
var RestartMethods = []RestartMethod{RestartSystemd, RestartSignal, RestartNone}

// ParseRestartMethod parses a restart method given as text.
func ParseRestartMethod(s string) (RestartMethod, error) {
	switch m := RestartMethod(s); m {
	case RestartSystemd, RestartSignal, RestartNone:
		return m, nil
	}
	return "", fmt.Errorf("unknown restart method %q: use %s, %s or %s", s, RestartSystemd, RestartSignal, RestartNone)
}
