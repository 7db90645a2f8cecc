// Package containerdcfg edits containerd configuration files to add or remove one runtime handler, as pure
// functions over bytes (no file or process I/O).
//
// # What it writes
//
// AddRuntime appends one managed block per handler at the end of the document:
//
//	# managed by wasmkube: begin runtime wazero
//	[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.wazero]
//	  runtime_type = "io.containerd.wazero.v1"
//	  runtime_path = "/opt/wasmkube/bin/containerd-shim-wazero-v1"
//	[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.wazero.options]
//	  SystemdCgroup = true
//	# managed by wasmkube: end runtime wazero
//
// The marker lines make the block findable again: a second AddRuntime rewrites it in place (so
// AddRuntime(AddRuntime(x)) == AddRuntime(x)), and RemoveRuntime deletes exactly those lines (so
// RemoveRuntime(AddRuntime(x)) == x byte for byte, also with other handlers' blocks added after it).
// RestoreRuntime puts one handler's block back as an earlier version of the document had it, leaving
// the rest of the document (other handlers' blocks, edits since) alone: the undo of one handler's edit.
//
// Option values are strings, booleans, int64 integers, float64 floats and arrays of strings, written as
// the matching TOML type. ParseOption reads "key=value" with the value as a TOML literal, and
// Option.String writes one, so an option passed on as a flag keeps its exact value and type (quotes,
// backslashes, tabs and unicode in strings included). Every byte outside the block is kept: comments, key
// order, quoting, CRLF line breaks. The block follows the document's conventions: CRLF if the document
// uses CRLF, and single-quoted keys and strings if its table headers use them (as containerd 2.x writes).
//
// # Versions and generations
//
// The version is read from the document's top-level `version` key, never guessed from the containerd
// release: absent means 1 (containerd's rule) unless PatchOptions.DefaultVersion says otherwise; 2, 3 and
// 4 are known; anything else fails closed with ErrUnknownVersion naming the value.
//
// Where the runtime goes also depends on the containerd generation that reads the file
// (PatchOptions.ContainerdMajor) and on the plugin IDs the file uses:
//
//	version 1:    plugins.cri.containerd.runtimes.<handler>
//	version 2:    plugins."io.containerd.grpc.v1.cri".containerd.runtimes.<handler>, except for
//	              containerd 2.x when the file keeps its runtimes (or, having none, its CRI runtime
//	              settings) under io.containerd.cri.v1.runtime, as AKS's containerd 2 configuration does
//	version 3, 4: plugins."io.containerd.cri.v1.runtime".containerd.runtimes.<handler>
//
// containerd 2.x migrates a version 1 or 2 file on load, moving each CRI setting to
// io.containerd.cri.v1.runtime only where the file does not set it there already, so a runtimes table
// under the new ID hides the old plugin's runtimes completely (checked with 2.4.2's `config dump`).
// containerd 1.x reads versions 1 and 2 only; a version 3 or 4 file for 1.x is ErrUnknownVersion. When the
// generation is not known, AddRuntime writes only where every generation that loads the version reads the
// same table, and otherwise refuses with ErrContainerdVersion. containerd 1.6 ignores runtime_path; on 1.x
// callers should put the shim on containerd's PATH or use an absolute runtime_type.
//
// # containerd 1.x's default runtime
//
// containerd 1.x decodes the file's runtimes table over its defaults as a whole: once the file defines any
// runtime (even an empty runtimes table), the built-in runc runtime is gone (checked with 1.6's `config
// dump`). Debian's stock version 2 config defines none. So for a file that 1.x reads without a runtimes
// table of its own, AddRuntime also writes 1.x's default runc, in a block of its own:
//
//	# managed by wasmkube: begin containerd 1.x default runtime
//	[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
//	...
//	# managed by wasmkube: end containerd 1.x default runtime
//
// Every handler's block shares it; RemoveRuntime removes it with the last handler's block, so the file
// comes back byte for byte, and while it is there containerd 1.x's `config dump` is the original's plus
// the handlers. containerd 2.x merges the file's runtimes into its own, so it gets no such block; with
// the generation unknown, AddRuntime refuses such a file with ErrContainerdVersion.
//
// # Safety
//
// Every output is re-parsed with go-toml/v2 and checked: same version, the managed block present, the
// handler's table holding exactly the runtime's values, and, for every generation that reads the file, the
// handler in the runtimes table that generation reads and every runtime it saw before still there,
// unchanged. So a runtime that containerd would silently drop (written under a plugin ID the file's
// other tables hide) fails the check instead of being returned. Edits that could produce invalid TOML
// or change the meaning of existing tables are refused with ErrUnsafeEdit and a reason: a parent table
// that is an inline table (TOML forbids extending it), an array of tables, or a plain value; a damaged
// managed block (a lone or repeated marker); key/values written right after the managed block without a
// header of their own (rewriting or removing the block would move them to another table). Parent tables
// defined by [headers], by dotted keys (`containerd.runtimes.runc.runtime_type = ...`) or implicitly are
// fine: a new [header] below them is valid TOML and both containerd 1.6 and 2.x accept it. On any error
// no document is returned.
//
// A runtime of the same name that wasmkube did not write is ErrConflict. With PatchOptions.Adopt, its
// lines are commented out with the prefix "# adopted by wasmkube, runtime <handler>: " and the managed
// block replaces it; RemoveRuntime later removes the block and un-comments those lines, restoring the
// original runtime byte for byte. Adopting therefore means "replace while installed", not "delete".
//
// # Templates
//
// k3s and rke2 read config.toml.tmpl / config-v3.toml.tmpl, Go templates that start with
// `{{ template "base" . }}`. Lines that consist of one template action (`{{ ... }}`, surrounding blanks
// allowed) are masked while parsing and kept verbatim; the TOML around them is edited as usual. Template
// actions inside TOML values (inside strings) are fine; unquoted actions elsewhere make the file
// unparseable (ErrParse). Because the base template declares the version, a template without its own
// `version` needs PatchOptions.DefaultVersion (2 for config.toml.tmpl, 3 for config-v3.toml.tmpl);
// without it Version fails rather than guess. Note that k3s's base template adds runtimes for shims it
// finds on its PATH (spin, wasmtime, ...): pick a handler name it does not use. The base template always
// defines runc, so a template that includes it gets no copy of containerd 1.x's default runtime.
//
// # Drop-ins
//
// DropIn returns a complete file (version header plus the managed block) for distros that read drop-in
// directories. containerd 2.x deep-merges imported files; containerd 1.x replaces a whole plugin table
// with the imported one, so a CRI drop-in on 1.x wipes the pause image and the other runtimes. Choosing a
// drop-in only for 2.x is the caller's job; DropIn refuses version 1, which only 1.x loads.
package containerdcfg
