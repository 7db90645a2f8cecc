package distro

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
	"github.com/wasmkube/wasmkube/internal/goldenfile"
	"github.com/wasmkube/wasmkube/internal/testenv"
	"github.com/wasmkube/wasmkube/pkg/containerdcfg"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// hostsDir holds one host root per fixture (see testdata/README.md).
const hostsDir = "testdata/hosts"

// golden compares got with testdata/golden/NAME.json, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.Assert(t, filepath.Join("testdata", "golden", name+".json"), got, *update)
}

// render is what the golden files hold: the indented profile, or the error with the host root
// replaced by HOSTROOT.
func render(t *testing.T, root string, p Profile, err error) []byte {
	t.Helper()
	var v any = p
	if err != nil {
		v = map[string]string{"error": strings.ReplaceAll(err.Error(), root, "HOSTROOT")}
	}
	out, mErr := json.MarshalIndent(v, "", "  ")
	if mErr != nil {
		t.Fatal(mErr)
	}
	return append(out, '\n')
}

const (
	cd1   = "containerd://1.7.27"
	cd16  = "containerd://1.6.20"
	cd2   = "containerd://2.1.4"
	k3s1  = "containerd://1.7.26-k3s1"
	k3s2  = "containerd://2.1.5-k3s1"
	rke21 = "containerd://1.7.27-k3s1"
)

func TestDetect(t *testing.T) {
	tests := []struct {
		name    string // golden file; also the host fixture unless host is set
		host    string
		hints   Hints
		wantErr error
		// check asserts the facts the case is about, beyond the golden file.
		check func(t *testing.T, p Profile)
	}{
		{name: "kubeadm-v2", hints: Hints{ContainerRuntimeVersion: cd1}, check: want("kubeadm", ModeInPlace, "/etc/containerd/config.toml", 2, installerapi.RestartSystemd)},
		{name: "kubeadm-v3", hints: Hints{ContainerRuntimeVersion: cd2}, check: want("kubeadm", ModeInPlace, "/etc/containerd/config.toml", 3, installerapi.RestartSystemd)},
		{name: "containerd-v1", hints: Hints{ContainerRuntimeVersion: cd16}, check: want("containerd", ModeInPlace, "/etc/containerd/config.toml", 1, installerapi.RestartSystemd)},
		{name: "containerd-v4", check: want("containerd", ModeInPlace, "/etc/containerd/config.toml", 4, installerapi.RestartSystemd)},
		{name: "containerd-no-config", check: want("containerd", ModeInPlace, "/etc/containerd/config.toml", 0, installerapi.RestartSystemd)},
		{name: "containerd-symlink", check: want("containerd", ModeInPlace, "/etc/containerd/config.toml", 2, installerapi.RestartSystemd)},
		{name: "kind", hints: Hints{ContainerRuntimeVersion: "containerd://2.1.3"}, check: want("kind", ModeInPlace, "/etc/containerd/config.toml", 3, installerapi.RestartSystemd)},
		{name: "minikube", check: want("minikube", ModeInPlace, "/etc/containerd/config.toml", 2, installerapi.RestartSystemd)},
		{name: "eks-al2", hints: Hints{ContainerRuntimeVersion: cd1}, check: want("eks-al2", ModeInPlace, "/etc/containerd/config.toml", 2, installerapi.RestartSystemd)},
		{name: "aks", check: want("aks", ModeInPlace, "/etc/containerd/config.toml", 2, installerapi.RestartSystemd)},
		{name: "gke", check: want("gke", ModeInPlace, "/etc/containerd/config.toml", 2, installerapi.RestartSystemd)},
		{name: "eks-al2023-v3", hints: Hints{ContainerRuntimeVersion: cd2}, check: want("eks-al2023", ModeDropIn, "/etc/containerd/config.d", 3, installerapi.RestartSystemd)},
		{name: "eks-al2023-v3-nohint", host: "eks-al2023-v3", check: want("eks-al2023", ModeDropIn, "/etc/containerd/config.d", 3, installerapi.RestartSystemd)},
		{name: "eks-al2023-v2", hints: Hints{ContainerRuntimeVersion: cd1}, check: want("eks-al2023", ModeInPlace, "/etc/containerd/config.toml", 2, installerapi.RestartSystemd)},
		{name: "k3s-v3-server", hints: Hints{ContainerRuntimeVersion: k3s2}, check: func(t *testing.T, p Profile) {
			want("k3s", ModeTemplate, "/var/lib/rancher/k3s/agent/etc/containerd/config-v3.toml.tmpl", 3, installerapi.RestartSystemd)(t, p)
			if p.Config.Seed != TemplateSeed || p.Restart.Units[0] != "k3s" || p.CRISocket != socketK3s {
				t.Errorf("want seed %q, unit k3s first, socket %s", TemplateSeed, socketK3s)
			}
		}},
		{name: "k3s-v3-tmpl", hints: Hints{ContainerRuntimeVersion: k3s2}, check: func(t *testing.T, p Profile) {
			want("k3s", ModeTemplate, "/var/lib/rancher/k3s/agent/etc/containerd/config-v3.toml.tmpl", 3, installerapi.RestartSystemd)(t, p)
			if p.Config.Seed != "" {
				t.Errorf("existing template got seed %q", p.Config.Seed)
			}
		}},
		// The kubelet could not ask containerd (a restart): no hint, so k3s is not taken for an external runtime.
		{name: "k3s-v3-unknown-runtime", host: "k3s-v3-server", hints: Hints{ContainerRuntimeVersion: "containerd://Unknown"}, check: want("k3s", ModeTemplate, "/var/lib/rancher/k3s/agent/etc/containerd/config-v3.toml.tmpl", 3, installerapi.RestartSystemd)},
		{name: "k3s-v3-nohint", host: "k3s-v3-server", check: want("k3s", ModeTemplate, "/var/lib/rancher/k3s/agent/etc/containerd/config-v3.toml.tmpl", 3, installerapi.RestartSystemd)},
		{name: "k3s-v2-agent", hints: Hints{ContainerRuntimeVersion: k3s1}, check: func(t *testing.T, p Profile) {
			want("k3s", ModeTemplate, "/var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl", 2, installerapi.RestartSystemd)(t, p)
			if got := strings.Join(p.Restart.Units, ","); got != "k3s-agent,k3s" {
				t.Errorf("units %s, want k3s-agent first (its unit file exists)", got)
			}
		}},
		{name: "k3s-v2-agent-nohint", host: "k3s-v2-agent", check: want("k3s", ModeTemplate, "/var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl", 2, installerapi.RestartSystemd)},
		{name: "k3s-v2-tmpl-containerd2", hints: Hints{ContainerRuntimeVersion: k3s2}, check: want("k3s", ModeTemplate, "/var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl", 2, installerapi.RestartSystemd)},
		{name: "k3s-dropin", hints: Hints{ContainerRuntimeVersion: k3s2}, check: func(t *testing.T, p Profile) {
			want("k3s", ModeDropIn, "/var/lib/rancher/k3s/agent/etc/containerd/config-v3.toml.d", 3, installerapi.RestartSystemd)(t, p)
			if p.Config.Imports != "/var/lib/rancher/k3s/agent/etc/containerd/config.toml" {
				t.Errorf("imports %q", p.Config.Imports)
			}
		}},
		{name: "k3s-dropin-containerd1", host: "k3s-dropin", hints: Hints{ContainerRuntimeVersion: k3s1}, check: want("k3s", ModeTemplate, "/var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl", 2, installerapi.RestartSystemd)},
		{name: "k3s-external-containerd", hints: Hints{ContainerRuntimeVersion: cd2}, check: want("containerd", ModeInPlace, "/etc/containerd/config.toml", 2, installerapi.RestartSystemd)},
		{name: "k3d", check: func(t *testing.T, p Profile) {
			want("k3d", ModeTemplate, "/var/lib/rancher/k3s/agent/etc/containerd/config-v3.toml.tmpl", 3, installerapi.RestartSignal)(t, p)
			if p.Restart.Process != "k3s" {
				t.Errorf("process %q, want k3s", p.Restart.Process)
			}
		}},
		{name: "k3s-ambiguous", wantErr: ErrAmbiguous},
		{name: "k3s-ambiguous-hint", host: "k3s-ambiguous", hints: Hints{ContainerRuntimeVersion: k3s1}, check: want("k3s", ModeTemplate, "/var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl", 2, installerapi.RestartSystemd)},
		{name: "rke2-server-v3", hints: Hints{ContainerRuntimeVersion: k3s2}, check: func(t *testing.T, p Profile) {
			want("rke2", ModeTemplate, "/var/lib/rancher/rke2/agent/etc/containerd/config-v3.toml.tmpl", 3, installerapi.RestartSystemd)(t, p)
			if got := strings.Join(p.Restart.Units, ","); got != "rke2-server,rke2-agent" || p.CRISocket != socketK3s {
				t.Errorf("units %s socket %s", got, p.CRISocket)
			}
		}},
		{name: "rke2-agent-v2", hints: Hints{ContainerRuntimeVersion: rke21}, check: want("rke2", ModeTemplate, "/var/lib/rancher/rke2/agent/etc/containerd/config.toml.tmpl", 2, installerapi.RestartSystemd)},
		{name: "microk8s-v2", check: func(t *testing.T, p Profile) {
			want("microk8s", ModeInPlace, microk8sTemplate, 2, installerapi.RestartSystemd)(t, p)
			if p.ShimDir != "/var/snap/microk8s/common/wasmkube/bin" || p.CRISocket != socketMicrok8s {
				t.Errorf("shim dir %s socket %s", p.ShimDir, p.CRISocket)
			}
		}},
		{name: "microk8s-v1", check: want("microk8s", ModeInPlace, microk8sTemplate, 1, installerapi.RestartSystemd)},
		{name: "k0s-managed", check: want("k0s", ModeDropIn, "/etc/k0s/containerd.d", 3, installerapi.RestartNone)},
		{name: "k0s-managed-noversion", hints: Hints{ContainerRuntimeVersion: cd1}, check: want("k0s", ModeDropIn, "/etc/k0s/containerd.d", 2, installerapi.RestartNone)},
		{name: "k0s-unmanaged", check: want("k0s", ModeInPlace, "/etc/k0s/containerd.toml", 2, installerapi.RestartSignal)},
		// Talos on a writable host root: the profile where it can be patched (the read-only case, a real
		// Talos node, is TestDetectImmutableReadOnly).
		{name: "talos", hints: Hints{ContainerRuntimeVersion: cd2}, check: func(t *testing.T, p Profile) {
			want("talos", ModeInPlace, talosConfig, 3, installerapi.RestartSignal)(t, p)
			if p.Unsupported != nil || p.Config.Imports != talosMain || p.ShimDir != immutableShimDir || p.Restart.Process != "containerd" {
				t.Errorf("unsupported %v, imports %s, shim dir %s, process %s", p.Unsupported, p.Config.Imports, p.ShimDir, p.Restart.Process)
			}
		}},
		// Every Bottlerocket variant renders its containerd config from the settings API.
		{name: "bottlerocket", hints: Hints{ContainerRuntimeVersion: cd1}, check: func(t *testing.T, p Profile) {
			want("bottlerocket", ModeInPlace, bottlerocketConfig, 2, installerapi.RestartSystemd)(t, p)
			if p.Unsupported == nil || !strings.Contains(p.Unsupported.Reason, "settings API") || !strings.Contains(p.Unsupported.Override, "variant") {
				t.Errorf("want unsupported (settings API, a custom variant), got %+v", p.Unsupported)
			}
		}},
		{name: "bottlerocket-no-template", hints: Hints{ContainerRuntimeVersion: cd1}, check: func(t *testing.T, p Profile) {
			want("bottlerocket", ModeInPlace, bottlerocketConfig, 2, installerapi.RestartSystemd)(t, p)
			if p.Unsupported != nil || p.StateFile != immutableStateFile {
				t.Errorf("unsupported %v, state file %s", p.Unsupported, p.StateFile)
			}
		}},
		{name: "forced-eks-al2", host: "containerd-v1", hints: Hints{Distro: "eks-al2"}, check: want("eks-al2", ModeInPlace, "/etc/containerd/config.toml", 1, installerapi.RestartSystemd)},
		{name: "forced-k3s-on-k3d", host: "k3d", hints: Hints{Distro: "k3s"}, check: want("k3s", ModeTemplate, "/var/lib/rancher/k3s/agent/etc/containerd/config-v3.toml.tmpl", 3, installerapi.RestartSignal)},
		{name: "forced-unknown-name", host: "kubeadm-v2", hints: Hints{Distro: "openshift"}},
		{name: "unknown", wantErr: ErrUnknown},
		{name: "kubeadm-crio", wantErr: ErrUnknown},
		{name: "docker-containerd", wantErr: ErrNotContainerd},
		{name: "runtime-docker", host: "kubeadm-v2", hints: Hints{ContainerRuntimeVersion: "docker://27.3.1"}, wantErr: ErrNotContainerd},
		{name: "runtime-garbage", host: "kubeadm-v2", hints: Hints{ContainerRuntimeVersion: "containerd://latest"}},
		{name: "bad-version", wantErr: containerdcfg.ErrUnknownVersion},
		{name: "bad-toml", wantErr: containerdcfg.ErrParse},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			host := tc.host
			if host == "" {
				host = tc.name
			}
			root := filepath.Join(hostsDir, host)
			p, err := Detect(root, tc.hints)
			golden(t, tc.name, render(t, root, p, err))
			switch {
			case tc.check != nil:
				if err != nil {
					t.Fatalf("Detect: %v", err)
				}
				tc.check(t, p)
				if len(p.Evidence) == 0 {
					t.Error("no evidence")
				}
			case err == nil:
				t.Fatalf("Detect succeeded (%s), want an error", p.Distro)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Errorf("error %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// want checks the headline of a profile.
func want(distro string, mode ConfigMode, path string, version int, method installerapi.RestartMethod) func(*testing.T, Profile) {
	return func(t *testing.T, p Profile) {
		t.Helper()
		if p.Distro != distro || p.Config.Mode != mode || p.Config.Path != path || p.Config.Version != version || p.Restart.Method != method {
			t.Errorf("got %s %s %s v%d restart %s, want %s %s %s v%d restart %s",
				p.Distro, p.Config.Mode, p.Config.Path, p.Config.Version, p.Restart.Method,
				distro, mode, path, version, method)
		}
	}
}

func TestDetectWithOverrides(t *testing.T) {
	tests := []struct {
		name    string
		host    string
		hints   Hints
		o       Overrides
		wantErr bool
		check   func(t *testing.T, p Profile)
	}{
		{name: "override-nonstandard", host: "nonstandard",
			o: Overrides{ConfigPath: "/srv/containerd/config.toml", CRISocket: "/srv/containerd/run/containerd.sock", Restart: installerapi.RestartSignal},
			check: func(t *testing.T, p Profile) {
				want("custom", ModeInPlace, "/srv/containerd/config.toml", 2, installerapi.RestartSignal)(t, p)
				if p.CRISocket != "/srv/containerd/run/containerd.sock" || p.Restart.Process != "containerd" {
					t.Errorf("socket %s process %s", p.CRISocket, p.Restart.Process)
				}
			}},
		{name: "override-config-path", host: "containerd-symlink", o: Overrides{ConfigPath: "/opt/site/x/../containerd/config.toml"},
			check: want("containerd", ModeInPlace, "/opt/site/containerd/config.toml", 2, installerapi.RestartSystemd)},
		{name: "override-config-path-absent", host: "kubeadm-v3", o: Overrides{ConfigPath: "/etc/containerd/main.toml"},
			check: want("kubeadm", ModeInPlace, "/etc/containerd/main.toml", 0, installerapi.RestartSystemd)},
		{name: "override-restart-none", host: "k3s-v3-server", hints: Hints{ContainerRuntimeVersion: k3s2}, o: Overrides{Restart: installerapi.RestartNone},
			check: func(t *testing.T, p Profile) {
				want("k3s", ModeTemplate, "/var/lib/rancher/k3s/agent/etc/containerd/config-v3.toml.tmpl", 3, installerapi.RestartNone)(t, p)
				if len(p.Restart.Units) != 0 {
					t.Errorf("units %v with restart none", p.Restart.Units)
				}
			}},
		{name: "override-units", host: "k3d", o: Overrides{Units: []string{"k3s-custom"}},
			check: func(t *testing.T, p Profile) {
				want("k3d", ModeTemplate, "/var/lib/rancher/k3s/agent/etc/containerd/config-v3.toml.tmpl", 3, installerapi.RestartSystemd)(t, p)
				if strings.Join(p.Restart.Units, ",") != "k3s-custom" {
					t.Errorf("units %v", p.Restart.Units)
				}
			}},
		{name: "override-unknown-without-config", host: "unknown", o: Overrides{CRISocket: "/run/x.sock"}, wantErr: true},
		{name: "override-relative-path", host: "kubeadm-v2", o: Overrides{ConfigPath: "etc/containerd/config.toml"}, wantErr: true},
		{name: "override-bad-restart", host: "kubeadm-v2", o: Overrides{Restart: "reboot"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := filepath.Join(hostsDir, tc.host)
			p, err := DetectWithOverrides(root, tc.hints, tc.o)
			golden(t, tc.name, render(t, root, p, err))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("got %s, want an error", p.Distro)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, p)
		})
	}
}

// TestWithOverridesPure checks that WithOverrides leaves its receiver alone and applies only what is set.
func TestWithOverridesPure(t *testing.T) {
	base := Profile{
		Distro:   "k3s",
		Config:   ConfigTarget{Path: "/a.toml", Mode: ModeInPlace, Version: 2},
		Restart:  Restart{Method: installerapi.RestartSystemd, Units: []string{"k3s", "k3s-agent"}},
		Evidence: []string{"found x"},
	}
	tests := []struct {
		name string
		o    Overrides
		want Profile
	}{
		{"empty", Overrides{}, base},
		{"path resets in-place version", Overrides{ConfigPath: "/b.toml"}, Profile{
			Distro: "k3s", Config: ConfigTarget{Path: "/b.toml", Mode: ModeInPlace}, Restart: base.Restart,
			Evidence: []string{"found x", "override: containerd config /b.toml (in-place)"},
		}},
		{"same path is no change", Overrides{ConfigPath: "/a.toml"}, base},
		{"systemd keeps units", Overrides{Restart: installerapi.RestartSystemd}, Profile{
			Distro: "k3s", Config: base.Config, Restart: base.Restart,
			Evidence: []string{"found x", "override: restart systemd unit k3s or k3s-agent"},
		}},
		{"signal defaults to containerd", Overrides{Restart: installerapi.RestartSignal}, Profile{
			Distro: "k3s", Config: base.Config, Restart: Restart{Method: installerapi.RestartSignal, Process: "containerd"},
			Evidence: []string{"found x", "override: restart signal process containerd"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := base.WithOverrides(tc.o)
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(tc.want)
			if !bytes.Equal(g, w) {
				t.Errorf("got  %s\nwant %s", g, w)
			}
			if len(base.Evidence) != 1 || base.Config.Path != "/a.toml" {
				t.Errorf("receiver changed: %+v", base)
			}
		})
	}
}

// TestDetectIsDeterministic runs every fixture repeatedly: the same host gives the same profile.
func TestDetectIsDeterministic(t *testing.T) {
	entries, err := os.ReadDir(hostsDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		root := filepath.Join(hostsDir, e.Name())
		first, firstErr := Detect(root, Hints{})
		for range 20 {
			p, err := Detect(root, Hints{})
			a, _ := json.Marshal(first)
			b, _ := json.Marshal(p)
			if !bytes.Equal(a, b) || (err == nil) != (firstErr == nil) {
				t.Fatalf("%s: detection differs between runs", e.Name())
			}
		}
	}
}

func TestDetectBadRoot(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, root := range []string{"", filepath.Join(t.TempDir(), "missing"), file} {
		if _, err := Detect(root, Hints{}); err == nil {
			t.Errorf("Detect(%q) succeeded", root)
		}
	}
}

// TestDetectImmutableReadOnly is a Talos node as it is: /etc/cri/conf.d on a read-only file system (a
// read-only bind mount of the fixture's directory). The profile is unsupported with the reason and
// Talos' documented route; the same host writable (the positive control) is patchable.
func TestDetectImmutableReadOnly(t *testing.T) {
	testenv.Integration(t)
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS(filepath.Join(hostsDir, "talos"))); err != nil {
		t.Fatal(err)
	}
	hints := Hints{ContainerRuntimeVersion: cd2}
	p, err := Detect(root, hints)
	if err != nil || p.Unsupported != nil {
		t.Fatalf("writable Talos root: %+v, %v; want a patchable profile", p.Unsupported, err)
	}
	dir := filepath.Join(root, "etc/cri/conf.d")
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount %s read-only: %v", dir, err)
	}
	p, err = Detect(root, hints)
	if err != nil {
		t.Fatal(err)
	}
	if p.Unsupported == nil || !strings.Contains(p.Unsupported.Reason, "read-only") || !strings.Contains(p.Unsupported.Override, "CRICustomizationConfig") {
		t.Errorf("read-only Talos root: unsupported = %+v, want the read-only reason and the machine configuration route", p.Unsupported)
	}
}
