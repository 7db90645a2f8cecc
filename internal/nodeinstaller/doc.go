// Package nodeinstaller is the node-installer program behind cmd/node-installer's flags: it turns a
// typed configuration (Node, Source, InstallRequest) into a wired installer.Installer (the distro
// profile detected from the host root, the restart strategy of pkg/restart, the CRI check of pkg/cri, a
// shim source of pkg/shimsource, the shim probe), runs one operation, and reports its result
// (api/installer/v1alpha1) on stdout and in the result file. It also decides the program's exit code
// for every error (ExitCode). It parses no flags; cmd/node-installer does.
package nodeinstaller
