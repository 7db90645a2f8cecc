package cluster

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Slots: cluster s uses pod subnet 10.250.s.0/24, service subnet 10.251.s.0/24 and TCP ports
// portBase+s*portsPerSlot onwards (below Linux's ephemeral range, so outgoing connections of other
// programs cannot take them between the check and the bind).
const (
	maxSlots     = 100
	portBase     = 21000
	portsPerSlot = 8
)

// hostLock is an abstract unix socket: whoever has it bound may claim a slot or change the host
// baseline (see kubelethost.go). The kernel releases it when its holder exits, so a crashed `up`
// never leaves the lock behind.
const hostLock = "@wasmkube-localcluster-lock"

// ErrNoSlot means every slot's subnets, ports, bridge or chain are in use.
var ErrNoSlot = errors.New("no free cluster slot")

// Network is a cluster's share of the host: addresses, names and ports derived from its slot.
type Network struct {
	// Slot is the index everything below derives from.
	Slot int `json:"slot"`
	// NodeIP is the node's InternalIP (the host's address); the apiserver advertises it.
	NodeIP string `json:"nodeIP"`
	// PodCIDR is the pods' subnet on Bridge; Gateway (its first address) sits on the bridge.
	PodCIDR string `json:"podCIDR"`
	Gateway string `json:"gateway"`
	// ServiceCIDR is the service subnet; ServiceIP (its first address) is kubernetes.default, DNATed
	// to the apiserver by Chain.
	ServiceCIDR string `json:"serviceCIDR"`
	ServiceIP   string `json:"serviceIP"`
	// Bridge is the Linux bridge the CNI bridge plugin attaches pods to.
	Bridge string `json:"bridge"`
	// Chain is the iptables nat chain holding the service DNAT.
	Chain string `json:"chain"`
	// CgroupRoot is the kubelet's cgroupRoot.
	CgroupRoot string `json:"cgroupRoot"`
	// Ports are the TCP ports of the cluster's servers.
	Ports Ports `json:"ports"`
}

// Ports are the TCP ports a cluster listens on.
type Ports struct {
	EtcdClient        int `json:"etcdClient"`
	EtcdPeer          int `json:"etcdPeer"`
	APIServer         int `json:"apiServer"`
	Kubelet           int `json:"kubelet"`
	ControllerManager int `json:"controllerManager"`
	Scheduler         int `json:"scheduler"`
}

func (p Ports) list() []int {
	return []int{p.EtcdClient, p.EtcdPeer, p.APIServer, p.Kubelet, p.ControllerManager, p.Scheduler}
}

// slotNetwork returns the Network of slot s.
func slotNetwork(s int, nodeIP string) Network {
	base := portBase + s*portsPerSlot
	return Network{
		Slot:        s,
		NodeIP:      nodeIP,
		PodCIDR:     fmt.Sprintf("10.250.%d.0/24", s),
		Gateway:     fmt.Sprintf("10.250.%d.1", s),
		ServiceCIDR: fmt.Sprintf("10.251.%d.0/24", s),
		ServiceIP:   fmt.Sprintf("10.251.%d.1", s),
		Bridge:      fmt.Sprintf("wasmkube%d", s),
		Chain:       fmt.Sprintf("WASMKUBE-LC-%d", s),
		CgroupRoot:  fmt.Sprintf("/wasmkube-lc-%d", s),
		Ports: Ports{
			EtcdClient: base, EtcdPeer: base + 1, APIServer: base + 2,
			Kubelet: base + 3, ControllerManager: base + 4, Scheduler: base + 5,
		},
	}
}

// lockHost takes the host-wide lock, waiting for it until ctx ends. Call the returned function to
// release it.
func lockHost(ctx context.Context) (func(), error) {
	var l net.Listener
	err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(context.Context) (bool, error) {
		var err error
		l, err = net.Listen("unix", hostLock)
		return err == nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("take the local clusters' host lock %s (another `up` or `down` holds it): %w", hostLock, err)
	}
	return func() { l.Close() }, nil
}

// freeSlot returns the first slot whose bridge, chain, subnets and ports are all unused. Hold the host
// lock, and create the bridge before releasing it: the bridge is the claim.
func freeSlot(nodeIP string) (Network, error) {
	used, err := usedNets()
	if err != nil {
		return Network{}, err
	}
	var reasons []string
	for s := range maxSlots {
		n := slotNetwork(s, nodeIP)
		if err := n.available(used); err != nil {
			if len(reasons) < 3 {
				reasons = append(reasons, fmt.Sprintf("slot %d: %v", s, err))
			}
			continue
		}
		return n, nil
	}
	return Network{}, fmt.Errorf("%w among %d (%s, ...): run `localcluster down` for clusters you no longer need", ErrNoSlot, maxSlots, strings.Join(reasons, "; "))
}

// available reports why n cannot be used, or nil.
func (n Network) available(used []*net.IPNet) error {
	if _, err := os.Stat("/sys/class/net/" + n.Bridge); err == nil {
		return fmt.Errorf("bridge %s exists", n.Bridge)
	}
	for _, cidr := range []string{n.PodCIDR, n.ServiceCIDR} {
		_, mine, _ := net.ParseCIDR(cidr)
		for _, u := range used {
			if u.Contains(mine.IP) || mine.Contains(u.IP) {
				return fmt.Errorf("subnet %s overlaps %s in use", cidr, u)
			}
		}
	}
	for _, p := range n.Ports.list() {
		l, err := net.Listen("tcp", fmt.Sprintf(":%d", p))
		if err != nil {
			return fmt.Errorf("port %d is in use", p)
		}
		l.Close()
	}
	if chainExists(n.Chain) {
		return fmt.Errorf("iptables chain %s exists", n.Chain)
	}
	return nil
}

// usedNets lists the subnets of every interface address and every IPv4 route except the default one.
func usedNets() ([]*net.IPNet, error) {
	var used []*net.IPNet
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list interface addresses: %w", err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			used = append(used, ipn)
		}
	}
	routes, err := readRoutes()
	if err != nil {
		return nil, err
	}
	for _, r := range routes {
		if ones, _ := r.dst.Mask.Size(); ones > 0 {
			used = append(used, r.dst)
		}
	}
	return used, nil
}

type route struct {
	iface string
	dst   *net.IPNet
}

// readRoutes parses the kernel's IPv4 routing table (/proc/net/route).
func readRoutes() ([]route, error) {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return nil, fmt.Errorf("read routes: %w", err)
	}
	defer f.Close()
	var routes []route
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 {
			continue
		}
		dst, err1 := hexIPv4(fields[1])
		mask, err2 := hexIPv4(fields[7])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("read routes: bad line %q", sc.Text())
		}
		routes = append(routes, route{iface: fields[0], dst: &net.IPNet{IP: dst, Mask: net.IPMask(mask)}})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read routes: %w", err)
	}
	return routes, nil
}

// hexIPv4 decodes an address as /proc/net/route prints it: the network-order bytes read as a host
// integer, in hex.
func hexIPv4(s string) (net.IP, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 4 {
		return nil, fmt.Errorf("bad address %q", s)
	}
	ip := make(net.IP, 4)
	binary.NativeEndian.PutUint32(ip, binary.BigEndian.Uint32(b))
	return ip, nil
}

// defaultNodeIP returns the first IPv4 address of the interface that holds the default route.
func defaultNodeIP() (string, error) {
	routes, err := readRoutes()
	if err != nil {
		return "", err
	}
	for _, r := range routes {
		if ones, _ := r.dst.Mask.Size(); ones != 0 {
			continue
		}
		iface, err := net.InterfaceByName(r.iface)
		if err != nil {
			return "", fmt.Errorf("find the node IP: interface %s of the default route: %w", r.iface, err)
		}
		addrs, err := iface.Addrs()
		if err != nil {
			return "", fmt.Errorf("find the node IP: addresses of %s: %w", r.iface, err)
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
				return ipn.IP.String(), nil
			}
		}
	}
	return "", errors.New("find the node IP: no interface with a default route has an IPv4 address; set the node IP explicitly")
}

// createBridge creates the bridge with the gateway address and brings it up. The CNI bridge plugin
// finds it ready; the address makes the slot's subnet visible to other clusters choosing theirs.
func (n Network) createBridge() error {
	for _, args := range [][]string{
		{"link", "add", "name", n.Bridge, "type", "bridge"},
		{"addr", "add", n.Gateway + "/24", "dev", n.Bridge},
		{"link", "set", n.Bridge, "up"},
	} {
		if err := run("ip", args...); err != nil {
			return fmt.Errorf("create bridge %s: %w", n.Bridge, err)
		}
	}
	return nil
}

// deleteBridge deletes the bridge if it exists.
func (n Network) deleteBridge() error {
	if _, err := os.Stat("/sys/class/net/" + n.Bridge); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := run("ip", "link", "delete", n.Bridge); err != nil {
		return fmt.Errorf("delete bridge %s: %w", n.Bridge, err)
	}
	return nil
}

// jumps are the rules that send traffic for the service IP to the chain: from pods (PREROUTING) and
// from host-network processes (OUTPUT).
func (n Network) jumps() [][]string {
	return [][]string{
		{"PREROUTING", "-d", n.ServiceIP + "/32", "-j", n.Chain},
		{"OUTPUT", "-d", n.ServiceIP + "/32", "-j", n.Chain},
	}
}

// addServiceDNAT creates the chain with one DNAT from ServiceIP:443 to the apiserver, and the jumps to it.
func (n Network) addServiceDNAT() error {
	rules := [][]string{
		{"-N", n.Chain},
		{"-A", n.Chain, "-p", "tcp", "-d", n.ServiceIP + "/32", "--dport", "443",
			"-j", "DNAT", "--to-destination", fmt.Sprintf("%s:%d", n.NodeIP, n.Ports.APIServer)},
	}
	for _, j := range n.jumps() {
		rules = append(rules, append([]string{"-A"}, j...))
	}
	for _, r := range rules {
		if err := iptables(r...); err != nil {
			return fmt.Errorf("add the service DNAT for %s: %w", n.ServiceIP, err)
		}
	}
	return nil
}

// removeServiceDNAT deletes the jumps and the chain, whichever exist.
func (n Network) removeServiceDNAT() error {
	var errs []error
	for _, j := range n.jumps() {
		for iptables(append([]string{"-C"}, j...)...) == nil {
			if err := iptables(append([]string{"-D"}, j...)...); err != nil {
				errs = append(errs, err)
				break
			}
		}
	}
	if chainExists(n.Chain) {
		for _, r := range [][]string{{"-F", n.Chain}, {"-X", n.Chain}} {
			if err := iptables(r...); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove iptables chain %s: %w", n.Chain, err)
	}
	return nil
}

func chainExists(chain string) bool { return iptables("-S", chain) == nil }

// iptables runs one iptables command on the nat table.
func iptables(args ...string) error { return xtables("iptables", "nat", args...) }

// xtables runs one iptables or ip6tables command on table, waiting for the xtables lock.
func xtables(cmd, table string, args ...string) error {
	return run(cmd, append([]string{"-w", "5", "-t", table}, args...)...)
}

// run runs a command and returns an error holding its argv and output when it fails.
func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
