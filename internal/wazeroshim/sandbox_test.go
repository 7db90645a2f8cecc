package wazeroshim_test

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/wasmkube/wasmkube/internal/containerdtest"
)

// sandboxHost is the host side of the sandbox tests: files outside every mount that guests try to
// reach, a container rootfs that ships links and device nodes pointing at them, and two volumes.
type sandboxHost struct {
	base     string // the test's directory on the host
	options  string // the shim's runtime options file (a compilation cache shared by the test's runs)
	host     string // base/host: secret.txt, victim.txt, dir/ (must never change)
	rootfs   string // base/rootfs: the container's "/"
	vol      string // base/vol: a writable volume, /data
	rovol    string // base/rovol: a read-only volume, /ro
	secret   string // the content of host/secret.txt
	baseline map[string]string
}

const victimText = "the host's victim file"

func newSandboxHost(t *testing.T, options string) *sandboxHost {
	t.Helper()
	base := t.TempDir()
	h := &sandboxHost{
		base: base, options: options, host: filepath.Join(base, "host"), rootfs: filepath.Join(base, "rootfs"),
		vol: filepath.Join(base, "vol"), rovol: filepath.Join(base, "rovol"),
		secret: fmt.Sprintf("HOST SECRET %d", os.Getpid()),
	}
	files := map[string]string{
		"host/secret.txt": h.secret, "host/victim.txt": victimText, "host/dir/keep": "x",
		"rootfs/probe.wasm": string(probeWasm), "rootfs/etc/motd": "from the image",
		"rootfs/usr/share/zoneinfo/UTC": "zoneinfo inside the image", "rootfs/etc/dir/keep": "x",
		"rovol/ro.txt": "read-only volume file", "rovol/sub/keep": "x", "vol/.keep": "",
	}
	for p, content := range files {
		writeFile(t, filepath.Join(base, p), content)
	}
	// What an image may ship: absolute and relative links out, a symlinked directory, /proc
	// look-alikes and device nodes (containerd creates them when it unpacks a layer as root).
	for link, target := range map[string]string{
		"etc/localtime": "/usr/share/zoneinfo/UTC",
		"abs-secret":    filepath.Join(h.host, "secret.txt"),
		"rel-secret":    "../host/secret.txt",
		"deep-secret":   strings.Repeat("../", 16) + strings.TrimPrefix(filepath.Join(h.host, "secret.txt"), "/"),
		"abs-hostdir":   h.host,
		"rel-hostdir":   "../host",
		"proc-root":     "/proc/1/root",
		"self-root":     "/proc/self/root",
		"root-link":     "/",
	} {
		if err := os.Symlink(target, filepath.Join(h.rootfs, link)); err != nil {
			t.Fatal(err)
		}
	}
	for name, minor := range map[string]uint32{"dev-null": 3, "dev-zero": 5} {
		if err := unix.Mknod(filepath.Join(h.rootfs, name), unix.S_IFCHR|0o666, int(unix.Mkdev(1, minor))); err != nil {
			t.Fatal(err)
		}
	}
	h.baseline = snapshot(t, h.host)
	return h
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// snapshot describes every entry under dir: type, mode, size, content hash and modification time.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	s := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("mode %o size %d mtime %d.%09d", st.Mode, st.Size, st.Mtim.Sec, st.Mtim.Nsec)
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" sha256 %x", sha256.Sum256(b))
		}
		s[strings.TrimPrefix(p, dir)] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkUntouched fails t when anything under dir differs from before.
func checkUntouched(t *testing.T, dir string, before map[string]string) {
	t.Helper()
	after := snapshot(t, dir)
	for _, p := range slices.Sorted(maps.Keys(after)) {
		if before[p] != after[p] {
			t.Errorf("%s%s changed: %q -> %q", dir, p, before[p], after[p])
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			t.Errorf("%s%s was removed", dir, p)
		}
	}
}

// step is one probe operation and its expected result: "ok", "ok <output substring>" or
// "errno <name>".
type step struct {
	op   []string
	want string
}

// runProbe runs the probe in a container on h's rootfs with h's volumes and checks each step's
// result. It returns the probe's output.
func runProbe(t *testing.T, d *containerdtest.Daemon, h *sandboxHost, id string, readOnlyRoot bool, steps []step) string {
	t.Helper()
	args := []string{"run", "--rm", "--runtime", shimBinary, "--runtime-config-path", h.options,
		"--cgroup", "", "--rootfs", h.rootfs,
		"--mount", "type=bind,src=" + h.vol + ",dst=/data,options=rbind:rw",
		"--mount", "type=bind,src=" + h.rovol + ",dst=/ro,options=rbind:ro"}
	if readOnlyRoot {
		args = append(args, "--read-only")
	}
	args = append(args, id, "/probe.wasm")
	for _, s := range steps {
		args = append(args, s.op...)
	}
	out, err := d.Ctr(args...)
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i, s := range steps {
		prefix := fmt.Sprintf("%d %s: ", i+1, strings.Join(s.op, " "))
		var got string
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				got = strings.TrimPrefix(l, prefix)
			}
		}
		wantErrno := strings.HasPrefix(s.want, "errno ")
		switch {
		case got == "":
			t.Errorf("step %s: no result in the output:\n%s", prefix, out)
		case wantErrno && got != s.want, !wantErrno && !strings.HasPrefix(got, "ok"),
			!wantErrno && !strings.Contains(got, strings.TrimPrefix(strings.TrimPrefix(s.want, "ok"), " ")):
			t.Errorf("step %sgot %q, want %q", prefix, got, s.want)
		}
	}
	if strings.Contains(out, h.secret) {
		t.Errorf("the guest read the host's secret:\n%s", out)
	}
	return out
}

// TestSandbox runs the probe guest through ctr run on containerd 2.4.2 and tries every way out of
// its rootfs and volumes: "..", absolute, relative and deep links shipped in the image or created
// at run time, symlinked directories, /proc look-alikes, renames, hard links and writes through
// them, and device nodes. Every attempt must fail with the errno a confined container would see,
// and nothing outside the mounts may change. The positive control reads and writes inside the
// rootfs and the writable volume, following links the container's way.
func TestSandbox(t *testing.T) {
	t.Parallel()
	d, cache := startContainerd(t)
	options := filepath.Join(t.TempDir(), "wazero.toml")
	writeFile(t, options, fmt.Sprintf("CacheDir = %q\n", cache))

	t.Run("escapes", func(t *testing.T) {
		h := newSandboxHost(t, options)
		hostSecret := strings.TrimPrefix(filepath.Join(h.host, "secret.txt"), "/")
		hostVictim := strings.TrimPrefix(filepath.Join(h.host, "victim.txt"), "/")
		up := strings.Repeat("../", 16)
		runProbe(t, d, h, "sandbox-escapes", false, []step{
			// ".." is refused by wazero before any lookup; the kernel would keep it at the root anyway.
			{[]string{"read", "/", "../host/secret.txt"}, "errno EPERM"},
			{[]string{"read", "/", up + hostSecret}, "errno EPERM"},
			// Links shipped in the image resolve inside the rootfs.
			{[]string{"read", "/", "abs-secret"}, "errno ENOENT"},
			{[]string{"read", "/", "rel-secret"}, "errno ENOENT"},
			{[]string{"read", "/", "deep-secret"}, "errno ENOENT"},
			{[]string{"read", "/", "abs-hostdir/secret.txt"}, "errno ENOENT"},
			{[]string{"read", "/", "rel-hostdir/secret.txt"}, "errno ENOENT"},
			{[]string{"stat", "/", "abs-secret"}, "errno ENOENT"},
			{[]string{"readdir", "/", "abs-hostdir"}, "errno ENOENT"},
			{[]string{"read", "/", "root-link/" + hostSecret}, "errno ENOENT"},
			{[]string{"read", "/", "proc-root/" + hostSecret}, "errno ENOENT"},
			{[]string{"read", "/", "self-root/" + hostSecret}, "errno ENOENT"},
			// Links the guest creates at run time.
			{[]string{"symlink", "/proc/self/root", "/", "p"}, "ok"},
			{[]string{"read", "/", "p/" + hostSecret}, "errno ENOENT"},
			{[]string{"symlink", "/" + hostVictim, "/", "evil-abs"}, "ok"},
			{[]string{"write", "/", "evil-abs", "OVERWRITTEN BY GUEST"}, "errno ENOENT"}, // no such directory in the rootfs
			{[]string{"symlink", up + hostVictim, "/", "evil-rel"}, "ok"},
			{[]string{"write", "/", "evil-rel", "OVERWRITTEN BY GUEST"}, "errno ENOENT"},
			{[]string{"symlink", up, "/", "up"}, "ok"},
			{[]string{"read", "/", "up/" + hostSecret}, "errno ENOENT"},
			{[]string{"append", "/", "up/" + hostVictim, "APPENDED BY GUEST"}, "errno ENOENT"},
			// Writes, renames, hard links and deletions through symlinked directories.
			{[]string{"write", "/", "abs-hostdir/created.txt", "x"}, "errno ENOENT"},
			{[]string{"mkdir", "/", "abs-hostdir/newdir"}, "errno ENOENT"},
			{[]string{"write", "/", "mine.txt", "mine"}, "ok"},
			{[]string{"rename", "/", "mine.txt", "/", "abs-hostdir/moved.txt"}, "errno ENOENT"},
			{[]string{"rename", "/", "rel-hostdir/victim.txt", "/", "stolen.txt"}, "errno ENOENT"},
			{[]string{"link", "/", "abs-hostdir/secret.txt", "/", "hardlink"}, "errno ENOENT"},
			{[]string{"link", "/", "up/" + hostSecret, "/", "hardlink"}, "errno ENOENT"},
			{[]string{"unlink", "/", "abs-hostdir/victim.txt"}, "errno ENOENT"},
			{[]string{"rmdir", "/", "rel-hostdir/dir"}, "errno ENOENT"},
			{[]string{"settimes", "/", "abs-secret"}, "errno ENOENT"},
			{[]string{"settimes", "/", "abs-hostdir"}, "errno ENOENT"},
			// Device nodes shipped in the image are refused, as on a nodev mount.
			{[]string{"read", "/", "dev-zero"}, "errno EACCES"},
			{[]string{"write", "/", "dev-null", "x"}, "errno EACCES"},
			{[]string{"link", "/", "dev-zero", "/", "zero2"}, "ok"},
			{[]string{"read", "/", "zero2"}, "errno EACCES"},
			// A volume is its own root: links in it resolve inside it, not in the host or the rootfs.
			{[]string{"symlink", "/", "/data", "vroot"}, "ok"},
			{[]string{"read", "/data", "vroot/" + hostSecret}, "errno ENOENT"},
			{[]string{"read", "/data", "vroot/etc/motd"}, "errno ENOENT"},
			{[]string{"symlink", up + hostVictim, "/data", "vevil"}, "ok"},
			{[]string{"write", "/data", "vevil", "OVERWRITTEN BY GUEST"}, "errno ENOENT"},
			{[]string{"rename", "/", "etc/motd", "/data", "motd"}, "errno ENOSYS"},
			{[]string{"link", "/", "etc/motd", "/data", "motd"}, "errno ENOSYS"},
		})
		checkUntouched(t, h.host, h.baseline)
	})

	t.Run("positive control", func(t *testing.T) {
		h := newSandboxHost(t, options)
		runProbe(t, d, h, "sandbox-control", false, []step{
			{[]string{"read", "/", "etc/motd"}, "ok from the image"},
			{[]string{"read", "/", "etc/localtime"}, "ok zoneinfo inside the image"}, // an absolute link, inside
			{[]string{"readlink", "/", "etc/localtime"}, "ok /usr/share/zoneinfo/UTC"},
			{[]string{"lstat", "/", "etc/localtime"}, "ok type=symlink"},
			{[]string{"stat", "/", "etc/localtime"}, "ok type=file size=25"},
			{[]string{"read", "/", "root-link/etc/motd"}, "ok from the image"},
			{[]string{"write", "/", "new.txt", "written by the guest"}, "ok"},
			{[]string{"read", "/", "new.txt"}, "ok written by the guest"},
			{[]string{"symlink", "/etc/motd", "/", "motd-link"}, "ok"},
			{[]string{"read", "/", "motd-link"}, "ok from the image"},
			{[]string{"read-nofollow", "/", "motd-link"}, "errno ELOOP"},
			{[]string{"symlink", "/etc/written", "/", "wlink"}, "ok"},
			{[]string{"write", "/", "wlink", "through a link"}, "ok"},
			{[]string{"read", "/", "etc/written"}, "ok through a link"},
			{[]string{"mkdir", "/", "d"}, "ok"},
			{[]string{"write", "/", "d/f", "in d"}, "ok"},
			{[]string{"rename", "/", "d/f", "/", "d/g"}, "ok"},
			{[]string{"link", "/", "d/g", "/", "d/h"}, "ok"},
			{[]string{"read", "/", "d/h"}, "ok in d"},
			{[]string{"readdir", "/", "d"}, "ok"},
			{[]string{"settimes", "/", "d/h"}, "ok"},
			{[]string{"fd-settimes", "/", "d/h"}, "ok"},
			{[]string{"truncate", "/", "d/h"}, "ok"},
			{[]string{"unlink", "/", "d/g"}, "ok"},
			{[]string{"unlink", "/", "d/h"}, "ok"},
			{[]string{"rmdir", "/", "d"}, "ok"},
			{[]string{"write", "/data", "out.txt", "written to the volume"}, "ok"},
			{[]string{"symlink", "/out.txt", "/data", "out-link"}, "ok"},
			{[]string{"read", "/data", "out-link"}, "ok written to the volume"},
			{[]string{"read", "/ro", "ro.txt"}, "ok read-only volume file"},
		})
		if b, err := os.ReadFile(filepath.Join(h.rootfs, "new.txt")); err != nil || string(b) != "written by the guest" {
			t.Errorf("rootfs/new.txt: %q, %v", b, err)
		}
		if b, err := os.ReadFile(filepath.Join(h.vol, "out.txt")); err != nil || string(b) != "written to the volume" {
			t.Errorf("vol/out.txt: %q, %v", b, err)
		}
		checkUntouched(t, h.host, h.baseline)
	})

	t.Run("read-only", func(t *testing.T) {
		h := newSandboxHost(t, options)
		rootfs, rovol := snapshot(t, h.rootfs), snapshot(t, h.rovol)
		var steps []step
		for _, m := range []struct{ dir, file, subdir string }{{"/", "etc/motd", "etc/dir"}, {"/ro", "ro.txt", "sub"}} {
			steps = append(steps,
				step{[]string{"write", m.dir, "new.txt", "x"}, "errno EROFS"},
				step{[]string{"write", m.dir, m.file, "x"}, "errno EROFS"},
				step{[]string{"append", m.dir, m.file, "x"}, "errno EROFS"},
				step{[]string{"create-excl", m.dir, "excl.txt"}, "errno EROFS"},
				step{[]string{"truncate", m.dir, m.file}, "errno EROFS"},
				step{[]string{"mkdir", m.dir, "newdir"}, "errno EROFS"},
				step{[]string{"rmdir", m.dir, m.subdir}, "errno EROFS"},
				step{[]string{"unlink", m.dir, m.file}, "errno EROFS"},
				step{[]string{"symlink", "x", m.dir, "link"}, "errno EROFS"},
				step{[]string{"link", m.dir, m.file, m.dir, "hardlink"}, "errno EROFS"},
				step{[]string{"rename", m.dir, m.file, m.dir, "renamed"}, "errno EROFS"},
				step{[]string{"settimes", m.dir, m.file}, "errno EROFS"},
				step{[]string{"settimes-nofollow", m.dir, m.file}, "errno EROFS"},
				step{[]string{"fd-settimes", m.dir, m.file}, "errno EROFS"},
				step{[]string{"read", m.dir, m.file}, "ok"},
			)
		}
		steps = append(steps, step{[]string{"write", "/data", "out.txt", "the writable volume still takes writes"}, "ok"})
		runProbe(t, d, h, "sandbox-read-only", true, steps)
		checkUntouched(t, h.rootfs, rootfs)
		checkUntouched(t, h.rovol, rovol)
		checkUntouched(t, h.host, h.baseline)
	})
}
