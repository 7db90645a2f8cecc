package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/wasmkube/wasmkube/pkg/restart"
)

// A kubelet changes the host beyond its root directory, whatever its configuration: it sets
// kernel tunables (protectKernelDefaults=false), creates iptables chains (the KUBE-FIREWALL rule
// against martian localhost traffic and its canaries), serves the device plugin socket at the fixed
// path /var/lib/kubelet/device-plugins/kubelet.sock and links container logs into
// /var/log/containers. These are host-wide, shared by every kubelet: so the first local cluster to
// start a kubelet (when no kubelet runs) records the host as it was in BaselineFile, and the last one
// to stop its kubelet (when none runs any more) puts it back and removes the file. Both steps run
// under the host lock; clusters may start and stop in any order.

// BaselineFile holds the HostBaseline while any local cluster's kubelet runs. /run is a tmpfs: a
// reboot forgets it together with the changes it describes.
const BaselineFile = "/run/wasmkube-localcluster-host.json"

// kubeletSysctls are the kernel settings the kubelet's setupKernelTunables changes.
var kubeletSysctls = []string{
	"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
	"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes",
}

// kubeletChains are the chains a kubelet creates, in the IPv4 and the IPv6 tables.
var kubeletChains = []struct{ table, name string }{
	{"mangle", "KUBE-IPTABLES-HINT"}, {"mangle", "KUBE-KUBELET-CANARY"},
	{"filter", "KUBE-FIREWALL"}, {"filter", "KUBE-KUBELET-CANARY"}, {"nat", "KUBE-KUBELET-CANARY"},
}

// containerLogLinks is where the kubelet links container logs, whatever its podLogsDir.
const containerLogLinks = "/var/log/containers"

// kubeletHostDirs are the fixed host directories a kubelet creates, parents first.
var kubeletHostDirs = []string{"/var/lib/kubelet", "/var/lib/kubelet/device-plugins", containerLogLinks}

// devicePluginSocket is the kubelet's device plugin registration socket (a fixed path).
const devicePluginSocket = "/var/lib/kubelet/device-plugins/kubelet.sock"

// HostBaseline is the host as it was before the first local cluster's kubelet started.
type HostBaseline struct {
	// Sysctls are the values of the kernel settings the kubelet changes.
	Sysctls map[string]string `json:"sysctls"`
	// MissingDirs are the kubelet's fixed host directories that did not exist.
	MissingDirs []string `json:"missingDirs,omitempty"`
	// MissingChains are the kubelet's iptables chains that did not exist.
	MissingChains []Chain `json:"missingChains,omitempty"`
}

// Chain is one iptables chain.
type Chain struct {
	// Command is iptables or ip6tables.
	Command string `json:"command"`
	Table   string `json:"table"`
	Name    string `json:"name"`
}

// recordBaseline writes BaselineFile unless it exists or a kubelet runs (whose owner then knows the
// baseline, or which is not ours to undo). Hold the host lock until the new kubelet runs.
func recordBaseline() error {
	if _, err := os.Stat(BaselineFile); err == nil {
		return nil
	}
	if running, err := kubeletRunning(); err != nil || running {
		return err
	}
	b := HostBaseline{Sysctls: map[string]string{}}
	for _, k := range kubeletSysctls {
		v, err := os.ReadFile("/proc/sys/" + k)
		if err != nil {
			return fmt.Errorf("record host baseline: read sysctl %s: %w", k, err)
		}
		b.Sysctls[k] = strings.TrimSpace(string(v))
	}
	for _, d := range kubeletHostDirs {
		if _, err := os.Lstat(d); errors.Is(err, fs.ErrNotExist) {
			b.MissingDirs = append(b.MissingDirs, d)
		}
	}
	for _, cmd := range xtablesCommands() {
		for _, c := range kubeletChains {
			if xtables(cmd, c.table, "-S", c.name) != nil {
				b.MissingChains = append(b.MissingChains, Chain{Command: cmd, Table: c.table, Name: c.name})
			}
		}
	}
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return fmt.Errorf("record host baseline: %w", err)
	}
	tmp := BaselineFile + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("record host baseline: %w", err)
	}
	if err := os.Rename(tmp, BaselineFile); err != nil {
		return fmt.Errorf("record host baseline: %w", err)
	}
	return nil
}

// ReadBaseline returns the recorded host baseline, or nil if there is none.
func ReadBaseline() (*HostBaseline, error) {
	data, err := os.ReadFile(BaselineFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read host baseline: %w", err)
	}
	var b HostBaseline
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("read host baseline: parse %s: %w", BaselineFile, err)
	}
	return &b, nil
}

// restoreBaseline restores the host from BaselineFile and removes the file, when there is one and no
// kubelet runs any more.
func restoreBaseline(ctx context.Context) error {
	release, err := lockHost(ctx)
	if err != nil {
		return err
	}
	defer release()
	b, err := ReadBaseline()
	if err != nil || b == nil {
		return err
	}
	if running, err := kubeletRunning(); err != nil || running {
		return err
	}
	if err := b.restore(); err != nil {
		return err
	}
	if err := os.Remove(BaselineFile); err != nil {
		return fmt.Errorf("remove host baseline: %w", err)
	}
	return nil
}

// xtablesCommands are the iptables commands present: iptables, and ip6tables if installed.
func xtablesCommands() []string {
	cmds := []string{"iptables"}
	if _, err := exec.LookPath("ip6tables"); err == nil {
		cmds = append(cmds, "ip6tables")
	}
	return cmds
}

// restore puts back what b recorded: sysctl values, and removes the chains and directories that
// did not exist (directories only when empty but for the device plugin socket).
func (b *HostBaseline) restore() error {
	var errs []error
	for k, v := range b.Sysctls {
		cur, err := os.ReadFile("/proc/sys/" + k)
		if err == nil && strings.TrimSpace(string(cur)) == v {
			continue
		}
		if err := os.WriteFile("/proc/sys/"+k, []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restore sysctl %s=%s: %w", k, v, err))
		}
	}
	for _, c := range b.MissingChains {
		if err := removeChain(c); err != nil {
			errs = append(errs, err)
		}
	}
	if slices.Contains(b.MissingDirs, filepath.Dir(devicePluginSocket)) {
		if err := os.Remove(devicePluginSocket); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove the kubelet's %s: %w", devicePluginSocket, err))
		}
	}
	for _, d := range slices.Backward(b.MissingDirs) {
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove the kubelet's directory %s: %w", d, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("restore what the kubelet changed on the host: %w", err)
	}
	return nil
}

// removeChain deletes the rules jumping to c, then c itself, if it exists.
func removeChain(c Chain) error {
	if xtables(c.Command, c.Table, "-S", c.Name) != nil {
		return nil
	}
	out, err := exec.Command(c.Command, "-w", "5", "-t", c.Table, "-S").Output()
	if err != nil {
		return fmt.Errorf("list %s table %s: %w", c.Command, c.Table, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		// "-A INPUT -j KUBE-FIREWALL": jumps carry no quoted comments, so Fields splits them right.
		if len(f) > 2 && f[0] == "-A" && f[1] != c.Name && slices.Contains(f, "-j") && f[slices.Index(f, "-j")+1] == c.Name {
			f[0] = "-D"
			if err := xtables(c.Command, c.Table, f...); err != nil {
				return err
			}
		}
	}
	if err := xtables(c.Command, c.Table, "-F", c.Name); err != nil {
		return err
	}
	return xtables(c.Command, c.Table, "-X", c.Name)
}

// removeContainerLogLinks removes the links in /var/log/containers that point below workDir: the
// kubelet removes a container's link only with the container, and Down removes pods through CRI.
func removeContainerLogLinks(workDir string) error {
	entries, err := os.ReadDir(containerLogLinks)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list %s: %w", containerLogLinks, err)
	}
	var errs []error
	for _, e := range entries {
		link := filepath.Join(containerLogLinks, e.Name())
		target, err := os.Readlink(link)
		if err != nil || !strings.HasPrefix(target, workDir+"/") {
			continue
		}
		if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove container log link %s: %w", link, err))
		}
	}
	return errors.Join(errs...)
}

// kubeletRunning reports whether any kubelet runs on this machine.
func kubeletRunning() (bool, error) {
	procs, err := restart.Processes("/proc")
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(procs, func(p restart.Process) bool { return p.Comm == Kubelet && !p.Zombie() }), nil
}
