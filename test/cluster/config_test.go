package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmkube/wasmkube/internal/testenv"
)

// fakeBinaries creates empty executables with the names Config checks, so that validation passes.
func fakeBinaries(t *testing.T) Binaries {
	t.Helper()
	dir := t.TempDir()
	b := Binaries{
		KubeDir: filepath.Join(dir, "kube"), Etcd: filepath.Join(dir, "etcd"),
		ContainerdDir: filepath.Join(dir, "containerd"), Runc: filepath.Join(dir, "runc"), CNIDir: filepath.Join(dir, "cni"),
	}
	files := []string{b.Etcd, b.Runc}
	for _, n := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet"} {
		files = append(files, filepath.Join(b.KubeDir, n))
	}
	for _, n := range []string{"containerd", "ctr", "containerd-shim-runc-v2"} {
		files = append(files, filepath.Join(b.ContainerdDir, n))
	}
	for _, n := range []string{"bridge", "host-local", "loopback"} {
		files = append(files, filepath.Join(b.CNIDir, n))
	}
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, nil, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func TestConfigComplete(t *testing.T) {
	t.Parallel()
	bins := fakeBinaries(t)
	valid := Config{WorkDir: "/tmp/wasmkube-cluster", Binaries: bins, CacheDir: t.TempDir()}
	for name, tc := range map[string]struct {
		change  func(*Config)
		wantErr string // "" means valid
	}{
		"valid":               {change: func(*Config) {}},
		"no work dir":         {change: func(c *Config) { c.WorkDir = "" }, wantErr: "no work directory"},
		"relative work dir":   {change: func(c *Config) { c.WorkDir = "tmp/x" }, wantErr: "not an absolute path"},
		"long work dir":       {change: func(c *Config) { c.WorkDir = "/tmp/" + strings.Repeat("x", 48) }, wantErr: "at most 52"},
		"longest work dir":    {change: func(c *Config) { c.WorkDir = "/tmp/" + strings.Repeat("x", 47) }},
		"bad node name":       {change: func(c *Config) { c.NodeName = "Node_1" }, wantErr: `node name "Node_1"`},
		"IPv6 node IP":        {change: func(c *Config) { c.NodeIP = "::1" }, wantErr: "not a non-loopback IPv4"},
		"loopback node IP":    {change: func(c *Config) { c.NodeIP = "127.0.0.1" }, wantErr: "not a non-loopback IPv4"},
		"config version 1":    {change: func(c *Config) { c.ContainerdConfigVersion = 1 }, wantErr: "containerd config version 1"},
		"config version 4":    {change: func(c *Config) { c.ContainerdConfigVersion = 4 }},
		"no cache dir":        {change: func(c *Config) { c.CacheDir = "" }, wantErr: "no cache directory"},
		"no etcd":             {change: func(c *Config) { c.Binaries.Etcd = "" }, wantErr: "no etcd binary given"},
		"missing kube dir":    {change: func(c *Config) { c.Binaries.KubeDir = "/nonexistent" }, wantErr: "/nonexistent: no such file"},
		"etcd is a directory": {change: func(c *Config) { c.Binaries.Etcd = c.Binaries.CNIDir }, wantErr: "is not an executable file"},
		"runc not executable": {change: func(c *Config) {
			c.Binaries.Runc = filepath.Join(t.TempDir(), "x")
			os.WriteFile(c.Binaries.Runc, nil, 0o644)
		}, wantErr: "is not an executable file"},
		"kubelet missing":      {change: func(c *Config) { c.Binaries.KubeDir = c.Binaries.CNIDir }, wantErr: "kubelet: no such file"},
		"ctr missing":          {change: func(c *Config) { c.Binaries.ContainerdDir = c.Binaries.KubeDir }, wantErr: "ctr: no such file"},
		"CNI plugins missing":  {change: func(c *Config) { c.Binaries.CNIDir = c.Binaries.KubeDir }, wantErr: "host-local: no such file"},
		"cni dir is not a dir": {change: func(c *Config) { c.Binaries.CNIDir = c.Binaries.Etcd }, wantErr: "is not a directory"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := valid
			tc.change(&cfg)
			got, err := cfg.complete()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("complete: %v", err)
				}
				if got.NodeName != DefaultNodeName || got.ContainerdConfigVersion == 0 || got.Progress == nil {
					t.Errorf("defaults not filled in: %+v", got)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("complete: got %v, want ErrInvalidConfig containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestUpRejectsUsedWorkDir(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		file    string
		wantErr string
	}{
		"cluster": {file: "cluster.json", wantErr: "holds a cluster"},
		"other":   {file: "notes.txt", wantErr: "is not empty"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, tc.file)
			if err := os.WriteFile(path, []byte("keep me"), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Up(context.Background(), Config{WorkDir: dir, Binaries: fakeBinaries(t), CacheDir: t.TempDir()})
			if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Up: got %v, want ErrExists containing %q", err, tc.wantErr)
			}
			if b, err := os.ReadFile(path); err != nil || string(b) != "keep me" {
				t.Errorf("Up touched %s: %q %v", path, b, err)
			}
		})
	}
}

func TestLoadRejectsCorruptState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(Layout{WorkDir: dir}.State(), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "parse") {
		t.Fatalf("Load of a corrupt state file: got %v, want a parse error", err)
	}
	if _, err := Load(t.TempDir()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Load of an empty directory: got %v, want ErrNotFound", err)
	}
}

func TestSlotNetworksAreDisjoint(t *testing.T) {
	t.Parallel()
	seen := map[string]int{}
	for s := range maxSlots {
		n := slotNetwork(s, "192.0.2.2")
		values := []string{n.PodCIDR, n.ServiceCIDR, n.Bridge, n.Chain, n.CgroupRoot}
		for _, p := range n.Ports.list() {
			if p >= 32768 {
				t.Errorf("slot %d: port %d is in Linux's default ephemeral range", s, p)
			}
			values = append(values, fmt.Sprint(p))
		}
		for _, v := range values {
			if other, dup := seen[v]; dup {
				t.Errorf("slot %d reuses %s of slot %d", s, v, other)
			}
			seen[v] = s
		}
		if len(n.Bridge) > 15 || len(n.Chain) > 28 {
			t.Errorf("slot %d: bridge %q or chain %q too long for the kernel", s, n.Bridge, n.Chain)
		}
		if _, ipn, _ := net.ParseCIDR(n.PodCIDR); !ipn.Contains(net.ParseIP(n.Gateway)) {
			t.Errorf("slot %d: gateway %s outside %s", s, n.Gateway, n.PodCIDR)
		}
		if _, ipn, _ := net.ParseCIDR(n.ServiceCIDR); !ipn.Contains(net.ParseIP(n.ServiceIP)) {
			t.Errorf("slot %d: service IP %s outside %s", s, n.ServiceIP, n.ServiceCIDR)
		}
	}
}

func TestSlotAvailability(t *testing.T) {
	t.Parallel()
	n := slotNetwork(maxSlots-1, "192.0.2.2")
	_, overlapping, _ := net.ParseCIDR("10.250.0.0/16")
	if err := n.available([]*net.IPNet{overlapping}); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("slot with a subnet in use: got %v, want an overlap", err)
	}
	l, err := net.Listen("tcp", fmt.Sprintf(":%d", n.Ports.APIServer))
	if err != nil {
		t.Skipf("cannot hold port %d for the test: %v", n.Ports.APIServer, err)
	}
	defer l.Close()
	if err := n.available(nil); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("slot with its apiserver port taken: got %v, want the port in use", err)
	}
}

func TestHexIPv4(t *testing.T) {
	t.Parallel()
	routes, err := readRoutes()
	if err != nil {
		t.Fatal(err)
	}
	// Every route's destination must be the network address of its own mask: a byte-order mistake
	// would turn 10.250.0.0/24 into 0.0.250.10 with mask 0.255.255.255.
	for _, r := range routes {
		if !r.dst.IP.Mask(r.dst.Mask).Equal(r.dst.IP) {
			t.Errorf("route %s on %s: address outside its mask", r.dst, r.iface)
		}
	}
	ip, err := hexIPv4("0102A8C0") // as a little-endian kernel prints 192.168.2.1
	if err != nil {
		t.Fatal(err)
	}
	want := "192.168.2.1"
	if binary.NativeEndian.Uint16([]byte{0, 1}) == 1 { // a big-endian kernel prints 1.2.168.192 so
		want = "1.2.168.192"
	}
	if ip.String() != want {
		t.Errorf("hexIPv4 = %s, want %s", ip, want)
	}
}

// TestClaimSlotConcurrently claims slots from several would-be clusters at once: the host-wide lock
// and the bridge claim must give each its own slot, and Down must release them.
func TestClaimSlotConcurrently(t *testing.T) {
	testenv.Integration(t)
	testenv.LocalClusterLock(t)
	const n = 4
	clusters := make([]*Cluster, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range clusters {
		dir, err := os.MkdirTemp("/tmp", "wkc")
		if err != nil {
			t.Fatal(err)
		}
		c := &Cluster{layout: Layout{WorkDir: dir}, state: State{Config: Config{WorkDir: dir, NodeIP: "192.0.2.2"}}}
		clusters[i] = c
		t.Cleanup(func() {
			if err := c.Down(context.Background()); err != nil {
				t.Error(err)
			}
			assertNothingLeft(t, c.state, nil)
		})
		wg.Go(func() { errs[i] = c.claimSlot(ctx) })
	}
	wg.Wait()
	slots := map[int]bool{}
	for i, c := range clusters {
		if errs[i] != nil {
			t.Fatalf("claim %d: %v", i, errs[i])
		}
		s := c.state.Network
		if slots[s.Slot] {
			t.Errorf("slot %d claimed twice", s.Slot)
		}
		slots[s.Slot] = true
		if _, err := os.Stat("/sys/class/net/" + s.Bridge); err != nil {
			t.Errorf("bridge %s of slot %d: %v", s.Bridge, s.Slot, err)
		}
	}
}
