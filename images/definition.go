package images

import (
	"io/fs"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Definition describes one image: what to compile into it, which fixed files it holds, and how it runs.
type Definition struct {
	// Name is the repository name without registry, e.g. wasmkube-manager.
	Name string
	// Description goes into the org.opencontainers.image.description label.
	Description string
	// Binaries are compiled once per platform and placed in the image.
	Binaries []Binary
	// Files are fixed files and directories (passwd, group, ...), the same on every platform.
	Files []File
	// User is the config's User ("65532:65532"); empty runs as root.
	User string
	// Entrypoint is the config's Entrypoint.
	Entrypoint []string
	// Env is the config's Env (KEY=value).
	Env []string
}

// Binary is a Go main package compiled into an image.
type Binary struct {
	// Package is the import path relative to the module root, e.g. ./cmd/manager.
	Package string
	// Path is where the binary lands in the image, e.g. /manager.
	Path string
}

// File is one entry of an image's filesystem.
type File struct {
	// Path is absolute inside the image, e.g. /etc/passwd.
	Path string
	// Mode holds the permission bits, plus fs.ModeDir for a directory.
	Mode fs.FileMode
	// UID and GID own the entry.
	UID, GID int
	// Data is the content of a regular file.
	Data []byte
}

// DefaultPlatforms are the platforms every image is built for.
var DefaultPlatforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64"},
}

// NonRootUID is the numeric user (and group) the manager runs as, as in distroless' nonroot.
const NonRootUID = 65532

// ManagerName and NodeInstallerName are the repository names of the two images.
const (
	ManagerName       = "wasmkube-manager"
	NodeInstallerName = "wasmkube-node-installer"
)

// BuiltinShimDir is where the node-installer image holds the built-in shims (the installer's default
// --builtin-dir).
const BuiltinShimDir = "/shims"

// Manager is the wasmkube-manager image: the manager binary, run as a non-root user, and nothing else
// (no shell, no package manager).
func Manager() Definition {
	return Definition{
		Name:        ManagerName,
		Description: "wasmkube manager: rolls containerd Wasm shims out to Kubernetes nodes",
		Binaries:    []Binary{{Package: "./cmd/manager", Path: "/manager"}},
		Files:       baseFiles(),
		User:        "65532:65532",
		Entrypoint:  []string{"/manager"},
	}
}

// NodeInstaller is the wasmkube-node-installer image: the node-installer binary and the built-in shims
// for the image's platform under /shims. It runs as root in a privileged Job pod; it needs no shell,
// since it reaches the host's systemctl through a chroot syscall. TLS roots come from the host (mounted
// at /host) through SSL_CERT_DIR, so a node's own trust store, corporate CAs included, applies.
func NodeInstaller() Definition {
	return Definition{
		Name:        NodeInstallerName,
		Description: "wasmkube node-installer: installs a containerd shim on the node it runs on",
		Binaries: []Binary{
			{Package: "./cmd/node-installer", Path: "/node-installer"},
			{Package: "./cmd/containerd-shim-wazero-v1", Path: BuiltinShimDir + "/containerd-shim-wazero-v1"},
		},
		Files:      baseFiles(),
		Entrypoint: []string{"/node-installer"},
		Env: []string{
			"SSL_CERT_DIR=/host/etc/ssl/certs:/host/etc/pki/tls/certs:/host/etc/pki/ca-trust/extracted/pem",
		},
	}
}

// Definitions returns every image wasmkube ships, in build order.
func Definitions() []Definition { return []Definition{Manager(), NodeInstaller()} }

// baseFiles is the minimal root filesystem shared by the images: users and groups (so tools show names,
// and a non-root user has a home) and a sticky /tmp.
func baseFiles() []File {
	return []File{
		{Path: "/etc/passwd", Mode: 0o644, Data: []byte(
			"root:x:0:0:root:/root:/sbin/nologin\n" +
				"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{Path: "/etc/group", Mode: 0o644, Data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{Path: "/home/nonroot", Mode: fs.ModeDir | 0o700, UID: NonRootUID, GID: NonRootUID},
		{Path: "/root", Mode: fs.ModeDir | 0o700},
		{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
	}
}
