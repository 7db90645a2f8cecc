package installer

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// ErrNotRunnable means a shim binary does not execute on this node: built for another architecture,
// corrupt, missing its dynamic loader, not executable, or failing its -v.
var ErrNotRunnable = errors.New("shim binary does not run on this node")

// Prober proves that a shim binary runs on the node before its handler is called ready: containerd
// checks nothing when it loads the config, and only a pod start would find out.
type Prober interface {
	// Probe runs the binary (a host path) cheaply and returns the one line it printed about itself.
	// An error wraps ErrNotRunnable when the binary cannot run here.
	Probe(ctx context.Context, binary string) (string, error)
}

// DefaultProbeTimeout bounds one probe when ExecProber.Timeout is zero.
const DefaultProbeTimeout = 10 * time.Second

// probeOutputLimit caps what a probe keeps of the binary's output.
const probeOutputLimit = 4 << 10

// ExecProber runs `<binary> -v`, which every containerd shim answers with its version and exit status
// 0 without starting anything (containerd's Go pkg/shim and the Rust containerd-shim crate alike). The
// binary runs chrooted into Root, the node's filesystem as containerd sees it, so a dynamically linked
// shim finds the node's loader and libraries exactly as it would under containerd; the cost is one exec.
type ExecProber struct {
	// Root is the directory holding the node's / (the installer pod's /host); "/" or "" runs the binary
	// without a chroot.
	Root string
	// Timeout bounds the run; DefaultProbeTimeout when zero.
	Timeout time.Duration
}

// Probe implements Prober.
func (p ExecProber) Probe(ctx context.Context, binary string) (string, error) {
	timeout := p.Timeout
	if timeout == 0 {
		timeout = DefaultProbeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "-v")
	if p.chroot() {
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: p.Root}
		cmd.Dir = "/"
	}
	// Not the installer's own environment (WASMKUBE_* flags, proxy settings): a shim started by
	// containerd gets neither.
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	out := &limitedBuffer{max: probeOutputLimit}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return summary(out.String()), nil
	case ctx.Err() != nil:
		return "", fmt.Errorf("%w: %s -v did not exit within %s", ErrNotRunnable, binary, timeout)
	case errors.As(err, &exit):
		return "", fmt.Errorf("%w: %s -v exited with %s: %s", ErrNotRunnable, binary, exit.ProcessState, summary(out.String()))
	case errors.Is(err, syscall.ENOEXEC):
		return "", fmt.Errorf("%w: %s: %s", ErrNotRunnable, binary, p.whyNoExec(binary))
	case errors.Is(err, syscall.ENOENT):
		return "", fmt.Errorf("%w: %s: %s", ErrNotRunnable, binary, p.whyNotFound(binary))
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return "", fmt.Errorf("%w: %s: permission denied: the file is not executable or its file system is mounted noexec", ErrNotRunnable, binary)
	}
	return "", fmt.Errorf("probe shim binary %s: %w", binary, err)
}

func (p ExecProber) chroot() bool { return p.Root != "" && filepath.Clean(p.Root) != "/" }

// file is the binary's path in this process's filesystem.
func (p ExecProber) file(binary string) (string, error) {
	if !p.chroot() {
		return binary, nil
	}
	return DirFS{Root: p.Root}.HostPath(binary)
}

// whyNoExec explains an ENOEXEC: the kernel knows no way to run the file.
func (p ExecProber) whyNoExec(binary string) string {
	file, err := p.file(binary)
	if err != nil {
		return "the kernel cannot execute it (exec format error)"
	}
	f, err := os.Open(file)
	if err != nil {
		return "the kernel cannot execute it (exec format error)"
	}
	defer f.Close()
	head := make([]byte, 4)
	n, _ := io.ReadFull(f, head)
	if !bytes.Equal(head[:n], []byte(elf.ELFMAG)) {
		return fmt.Sprintf("exec format error: not an ELF executable (it begins with %q)", head[:n])
	}
	e, err := elf.NewFile(f)
	if err != nil {
		return fmt.Sprintf("exec format error: corrupt ELF file: %v", err)
	}
	defer e.Close()
	if arch := goArch(e.Machine); arch != runtime.GOARCH {
		return fmt.Sprintf("exec format error: built for %s, this node is linux/%s; the Shim's source must offer a binary for linux/%s", arch, runtime.GOARCH, runtime.GOARCH)
	}
	return fmt.Sprintf("exec format error: an ELF %s %s the kernel refuses", e.Class, e.Type)
}

// whyNotFound explains an ENOENT for a file that may exist: its interpreter is missing.
func (p ExecProber) whyNotFound(binary string) string {
	file, err := p.file(binary)
	if err != nil {
		return "no such file"
	}
	f, err := elf.Open(file)
	if err != nil {
		if _, serr := os.Stat(file); serr != nil {
			return "no such file"
		}
		return "its interpreter (#! line) is missing on this node"
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type != elf.PT_INTERP {
			continue
		}
		b, err := io.ReadAll(prog.Open())
		if err == nil {
			return fmt.Sprintf("it is linked dynamically against the loader %s, which this node lacks (a glibc binary on a musl host, or the reverse); use a static build", strings.TrimRight(string(b), "\x00"))
		}
	}
	return "the kernel cannot find a file it needs to run it"
}

// goArch names an ELF machine as GOARCH does.
func goArch(m elf.Machine) string {
	switch m {
	case elf.EM_X86_64:
		return "amd64"
	case elf.EM_AARCH64:
		return "arm64"
	case elf.EM_386:
		return "386"
	case elf.EM_ARM:
		return "arm"
	case elf.EM_RISCV:
		return "riscv64"
	case elf.EM_PPC64:
		return "ppc64le"
	case elf.EM_S390:
		return "s390x"
	}
	return m.String()
}

// summary turns a binary's output into one short line: whitespace collapsed, at most 200 bytes.
func summary(out string) string {
	s := strings.Join(strings.Fields(out), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// limitedBuffer keeps the first max bytes written to it and discards the rest.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
