// Package restart restarts a node's containerd the way its distro expects and returns once containerd
// answers on its CRI socket again. Strategies (one Restarter each):
//
//   - Systemd restarts the first active unit (containerd, k3s, k3s-agent, rke2-server, ...) through the
//     host's own systemctl: `chroot HOST-ROOT systemctl restart UNIT`.
//   - Signal finds the host's containerd through /proc (the installer runs with hostPID), sends it
//     SIGTERM and waits for its supervisor (k3d's or our local cluster's) to start a new one.
//   - None only waits for the socket (k0s reloads its drop-ins itself).
//
// Every wait uses k8s.io/apimachinery's wait helpers and is bounded by the caller's context.
package restart
