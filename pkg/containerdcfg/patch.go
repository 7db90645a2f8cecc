package containerdcfg

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// PatchOptions tune AddRuntime and RemoveRuntime.
type PatchOptions struct {
	// Adopt takes over a same-named runtime that wasmkube did not write: its lines are commented out
	// (prefixed with "# adopted by wasmkube, runtime H: ") and wasmkube's block is written instead.
	// RemoveRuntime later removes the block and restores those lines, so the original runtime comes back.
	// Without Adopt such a runtime is ErrConflict.
	Adopt bool
	// DefaultVersion is the version assumed when the document declares none (k3s/rke2 templates, whose
	// base template declares it); 0 means containerd's own rule: absent -> 1.
	DefaultVersion int
	// ContainerdMajor is the major version (1 or 2) of the containerd that reads the document, or 0 when
	// it is not known. Together with the document's version and plugin IDs it decides where AddRuntime
	// writes the runtime (see the package documentation); when it is 0, AddRuntime writes only where
	// every generation that loads the version reads the same table, and refuses with
	// ErrContainerdVersion otherwise.
	ContainerdMajor int
}

// target is what an edit needs to know about a document and a handler.
type target struct {
	doc     *document
	version int
	handler string
	block   *block // existing managed block of the handler, or nil
}

func load(doc []byte, handler string, opts PatchOptions) (*target, error) {
	if err := validHandler(handler); err != nil {
		return nil, err
	}
	d, err := parse(doc)
	if err != nil {
		return nil, err
	}
	v, err := d.version(opts)
	if err != nil {
		return nil, err
	}
	b, err := d.block(handler)
	if err != nil {
		return nil, err
	}
	return &target{doc: d, version: v, handler: handler, block: b}, nil
}

// placement is where AddRuntime writes a handler.
type placement struct {
	majors []int    // the containerd generations that must see the handler
	path   []string // the handler's runtime table
	// defaultRuntime says that the document needs wasmkube's copy of containerd 1.x's default runtime.
	defaultRuntime bool
}

// place decides where the handler goes: the runtimes table every generation in readers reads from the
// document as it is without wasmkube's blocks. A document that defines no runtimes table for containerd
// 1.x also needs 1.x's default runtime in a block of its own, unless a wasmkube block defines runc or the
// document includes k3s/rke2's base template, which defines runc.
func (t *target) place(opts PatchOptions) (*placement, error) {
	majors, err := readers(opts.ContainerdMajor, t.version)
	if err != nil {
		return nil, err
	}
	blocks, err := t.doc.blocks()
	if err != nil {
		return nil, err
	}
	base, err := t.doc.treeWithout(blocks)
	if err != nil {
		return nil, err
	}
	p := &placement{majors: majors}
	for _, major := range majors {
		table := runtimesTable(base, t.version, major)
		if p.path != nil && !slices.Equal(table, p.path[:len(table)]) {
			return nil, fmt.Errorf("%w: this version %d config keeps runtimes where containerd 1.x reads them (%s) and where 2.x reads them (%s); which one matters depends on the containerd that reads it",
				ErrContainerdVersion, t.version, style{}.keyPath(p.path[:len(table)]), style{}.keyPath(table))
		}
		p.path = append(slices.Clip(table), t.handler)
		if major != 1 {
			continue
		}
		if _, defined := lookup(base, table); defined || t.doc.includesBase || t.handler == defaultRuntime.Handler || slices.Contains(t.doc.handlers(), defaultRuntime.Handler) {
			continue
		}
		p.defaultRuntime = true
	}
	return p, nil
}

// foreign returns the expressions outside the managed block that define the runtime table at path or
// anything in it.
func (t *target) foreign(path []string) []expr {
	var out []expr
	for _, e := range t.doc.exprs {
		if !t.block.contains(e) && hasPrefix(e.path, path) {
			out = append(out, e)
		}
	}
	return out
}

// checkAfterBlock fails when key/values follow the managed block without a table header of their own:
// they belong to the block's last table now and would change tables when the block is rewritten or removed.
func (t *target) checkAfterBlock() error {
	if t.block == nil {
		return nil
	}
	for _, e := range t.doc.exprs {
		if e.start < t.block.end {
			continue
		}
		if e.kind == unstable.KeyValue {
			return fmt.Errorf("%w: line %d: key %s follows wasmkube's block for runtime %s without a [table] header, so editing the block would move it to another table; move it above the block", ErrUnsafeEdit, e.line, style{}.keyPath(e.path[len(e.path)-1:]), t.handler)
		}
		break
	}
	return nil
}

// checkParents fails when a table on the way to the runtime table at path cannot take a new [header]
// below it: an inline table, an array of tables, or a plain value. Tables made by headers or dotted keys
// can.
func (t *target) checkParents(path []string) error {
	for _, e := range t.doc.exprs {
		if t.block.contains(e) || len(e.path) >= len(path) || !hasPrefix(path, e.path) {
			continue
		}
		name := style{}.keyPath(e.path)
		switch {
		case e.kind == unstable.ArrayTable:
			return fmt.Errorf("%w: line %d: %s is an array of tables; add the runtime by hand", ErrUnsafeEdit, e.line, name)
		case e.kind == unstable.KeyValue && e.value == unstable.InlineTable:
			return fmt.Errorf("%w: line %d: %s is an inline table, which TOML does not allow to extend; rewrite it as a [table] or add the runtime by hand", ErrUnsafeEdit, e.line, name)
		case e.kind == unstable.KeyValue:
			return fmt.Errorf("%w: line %d: %s is a %s value, not a table", ErrUnsafeEdit, e.line, name, strings.ToLower(e.value.String()))
		}
	}
	return nil
}

// render returns a managed block holding rt's tables at path, every line ending in eol.
func render(st style, begin, end string, path []string, rt Runtime) string {
	var b strings.Builder
	line := func(s string) { b.WriteString(s + st.eol) }
	line(begin)
	line("[" + st.keyPath(path) + "]")
	line("  runtime_type = " + st.str(rt.Type))
	if rt.Path != "" {
		line("  runtime_path = " + st.str(rt.Path))
	}
	if len(rt.Options) > 0 {
		line("[" + st.keyPath(append(path[:len(path):len(path)], "options")) + "]")
		for _, o := range rt.Options {
			line("  " + st.key(o.Key) + " = " + st.value(o.normalized()))
		}
	}
	line(end)
	return b.String()
}

// AddRuntime adds rt to doc inside a managed block, or updates wasmkube's existing block for rt.Handler in
// place, and returns the new document. Every byte outside wasmkube's blocks is preserved; a new block is
// appended at the end of the document. Where the runtime goes depends on the document's version and
// plugin IDs and on opts.ContainerdMajor (see the package documentation). The result is re-parsed and
// checked before it is returned; on any error the input is not modified and no document is returned.
func AddRuntime(doc []byte, rt Runtime, opts PatchOptions) ([]byte, error) {
	if err := rt.validate(); err != nil {
		return nil, err
	}
	t, err := load(doc, rt.Handler, opts)
	if err != nil {
		return nil, err
	}
	if err := t.checkAfterBlock(); err != nil {
		return nil, err
	}
	p, err := t.place(opts)
	if err != nil {
		return nil, err
	}
	if f := t.foreign(p.path); len(f) > 0 {
		if !opts.Adopt {
			return nil, fmt.Errorf("%w: line %d: runtime %s (%s) was not written by wasmkube; adopt it to take it over", ErrConflict, f[0].line, rt.Handler, style{}.keyPath(p.path))
		}
		adopted := commentOut(doc, f, adoptPrefix(rt.Handler))
		opts.Adopt = false
		out, err := AddRuntime(adopted, rt, opts)
		if err != nil {
			return nil, fmt.Errorf("after commenting out runtime %s to adopt it: %w", rt.Handler, err)
		}
		return out, nil
	}
	if err := t.checkParents(p.path); err != nil {
		return nil, err
	}
	if p.defaultRuntime && opts.ContainerdMajor == 0 {
		return nil, fmt.Errorf("%w: this version %d config defines no runtimes: containerd 1.x would then replace its built-in runc runtime with %s alone, so wasmkube writes runc too, but containerd 2.x keeps its own runc, which that copy would override",
			ErrContainerdVersion, t.version, rt.Handler)
	}
	st := t.doc.style
	text := render(st, beginMarker(rt.Handler), endMarker(rt.Handler), p.path, rt)
	if p.defaultRuntime {
		def, err := t.doc.defaultBlock()
		if err != nil {
			return nil, err
		}
		if def == nil {
			runc := append(slices.Clip(p.path[:len(p.path)-1]), defaultRuntime.Handler)
			text = render(st, beginDefault, endDefault, runc, defaultRuntime) + text
		}
	}
	out := put(doc, t.block, text, st.eol)
	if err := t.checkAdded(out, p, rt, opts); err != nil {
		return nil, err
	}
	return out, nil
}

// put writes a block's text (whole lines, each ending in eol) over the block b, or appends it to the
// document when b is nil. A block at the end of a document without a final line break gets none either.
func put(doc []byte, b *block, text, eol string) []byte {
	var out []byte
	if b != nil {
		if !b.terminated {
			text = strings.TrimSuffix(text, eol)
		}
		return append(append(append(out, doc[:b.start]...), text...), doc[b.end:]...)
	}
	out = append(out, doc...)
	if len(doc) > 0 && doc[len(doc)-1] != '\n' {
		out = append(out, eol...)
		text = strings.TrimSuffix(text, eol)
	}
	return append(out, text...)
}

// commentOut prefixes every line of the given expressions with prefix.
func commentOut(doc []byte, exprs []expr, prefix string) []byte {
	var out []byte
	off := 0
	for _, l := range lines(doc) {
		for _, e := range exprs {
			if off >= e.start && off < e.end {
				out = append(out, prefix...)
				break
			}
		}
		out = append(out, l...)
		off += len(l)
	}
	return out
}

// RemoveRuntime removes wasmkube's managed block for handler and restores any runtime it adopted, byte for
// byte as it was. When no other handler's block is left, the block holding containerd 1.x's default
// runtime goes too. A document without a block is returned unchanged. A document that does not parse or
// has an unknown version is an error, as for AddRuntime.
func RemoveRuntime(doc []byte, handler string, opts PatchOptions) ([]byte, error) {
	t, err := load(doc, handler, opts)
	if err != nil {
		return nil, err
	}
	adopted := t.doc.adopted(handler)
	if t.block == nil && len(adopted) == 0 {
		return doc, nil
	}
	if err := t.checkAfterBlock(); err != nil {
		return nil, err
	}
	// Cut the adoption prefixes and the block, in document order.
	type cut struct{ start, end int }
	var cuts []cut
	for _, off := range adopted {
		if !(t.block != nil && off >= t.block.start && off < t.block.end) {
			cuts = append(cuts, cut{off, off + len(adoptPrefix(handler))})
		}
	}
	if b := t.block; b != nil {
		start, end := b.span(doc)
		cuts = append(cuts, cut{start, end})
	}
	slices.SortFunc(cuts, func(a, b cut) int { return a.start - b.start })
	var out []byte
	last := 0
	for _, c := range cuts {
		out = append(out, doc[last:c.start]...)
		last = c.end
	}
	out = append(out, doc[last:]...)
	if out, err = removeDefault(out); err != nil {
		return nil, err
	}
	if err := checkRemoved(out, handler, opts); err != nil {
		return nil, err
	}
	return out, nil
}

// span returns the bytes to cut to remove the block: its lines, and, when it ends the document without a
// final line break, the line break before it, which AddRuntime added when it appended the block.
func (b *block) span(doc []byte) (start, end int) {
	start = b.start
	if !b.terminated && start > 0 {
		start--
		if start > 0 && doc[start-1] == '\r' {
			start--
		}
	}
	return start, b.end
}

// removeDefault removes the block holding containerd 1.x's default runtime when no handler's block is
// left to need it.
func removeDefault(doc []byte) ([]byte, error) {
	d, err := parse(doc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w: %v", ErrUnsafeEdit, errOutputCheck, err)
	}
	b, err := d.defaultBlock()
	if err != nil || b == nil || len(d.handlers()) > 0 {
		return doc, err
	}
	start, end := b.span(doc)
	return append(doc[:start:start], doc[end:]...), nil
}

// RestoreRuntime returns doc with wasmkube's managed block for handler put back as it is in before (a
// version of the document from before an AddRuntime): removed (as RemoveRuntime removes it) when before
// has no block for handler, else before's block replaces doc's block in place, or is appended when doc
// has none (with before's block of containerd 1.x's default runtime if doc lost it). Everything else
// in doc stays as it is, other handlers' blocks and edits made since before included: it undoes one
// handler's edit without undoing anyone else's. The result is checked like AddRuntime's.
func RestoreRuntime(doc, before []byte, handler string, opts PatchOptions) ([]byte, error) {
	var old *target
	if len(before) > 0 {
		var err error
		if old, err = load(before, handler, opts); err != nil {
			return nil, fmt.Errorf("read the earlier config: %w", err)
		}
	}
	if old == nil || old.block == nil {
		return RemoveRuntime(doc, handler, opts)
	}
	t, err := load(doc, handler, opts)
	if err != nil {
		return nil, err
	}
	if err := t.checkAfterBlock(); err != nil {
		return nil, err
	}
	text := old.block.text(before, old.doc.style.eol)
	if t.block == nil {
		def, err := old.doc.defaultBlock()
		if err != nil {
			return nil, err
		}
		cur, err := t.doc.defaultBlock()
		if err != nil {
			return nil, err
		}
		if def != nil && cur == nil {
			text = def.text(before, old.doc.style.eol) + text
		}
	}
	out := put(doc, t.block, text, t.doc.style.eol)

	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: %w: %s", ErrUnsafeEdit, errOutputCheck, fmt.Sprintf(format, args...))
	}
	o, err := load(out, handler, opts)
	switch {
	case err != nil:
		return nil, fail("%v", err)
	case o.version != t.version:
		return nil, fail("version changed from %d to %d", t.version, o.version)
	case o.block == nil:
		return nil, fail("managed block for %s not found", handler)
	}
	path := old.tablePath()
	if f := o.foreign(path); len(f) > 0 {
		return nil, fail("line %d: runtime %s also defined outside the managed block", f[0].line, handler)
	}
	want, _ := lookup(old.doc.tree, path)
	if got, _ := lookup(o.doc.tree, path); !equalValues(got, want) {
		return nil, fail("table %s is %v, want %v as before", style{}.keyPath(path), got, want)
	}
	return out, nil
}

// text returns the block's lines from doc, the last one ending in eol too.
func (b *block) text(doc []byte, eol string) string {
	text := string(doc[b.start:b.end])
	if !b.terminated {
		text += eol
	}
	return text
}

// tablePath returns the key path of the first table the handler's block defines (its runtime table).
func (t *target) tablePath() []string {
	for _, e := range t.doc.exprs {
		if t.block.contains(e) && e.kind == unstable.Table {
			return e.path
		}
	}
	return nil
}

// Owned reports whether doc holds wasmkube's managed block for handler.
func Owned(doc []byte, handler string, opts PatchOptions) (bool, error) {
	t, err := load(doc, handler, opts)
	if err != nil {
		return false, err
	}
	return t.block != nil, nil
}

// DropIn returns a stand-alone config file holding only the runtime, with the version header, for
// distros that read drop-in files (containerd 2.x `imports`, k3s/rke2 `config-v3.toml.d`, k0s
// `containerd.d`, EKS AL2023 `config.d`). containerd 2.x deep-merges imported files, so a drop-in adds
// the runtime. containerd 1.x replaces a whole plugin table with an imported one, so a CRI drop-in
// would drop the pause image and every other runtime: never give 1.x a drop-in (the caller knows which
// containerd runs). Version 1 files only load on 1.x, so DropIn refuses version 1.
func DropIn(version int, rt Runtime) ([]byte, error) {
	if version == 1 {
		return nil, fmt.Errorf("%w: version 1 drop-ins only load on containerd 1.x, whose imports replace the whole CRI plugin table; patch the main file instead", ErrUnsafeEdit)
	}
	if _, err := pluginID(version); err != nil {
		return nil, err
	}
	return AddRuntime(fmt.Appendf(nil, "version = %d\n", version), rt, PatchOptions{ContainerdMajor: 2})
}

// checkAdded re-parses a patched document and checks that the handler's table sits at the placement with
// exactly rt's values, inside wasmkube's block, and that every containerd generation that reads it sees
// the handler and keeps every runtime it saw before (checkReaders).
func (t *target) checkAdded(out []byte, p *placement, rt Runtime, opts PatchOptions) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: %w: %s", ErrUnsafeEdit, errOutputCheck, fmt.Sprintf(format, args...))
	}
	o, err := load(out, rt.Handler, opts)
	if err != nil {
		return fail("%v", err)
	}
	if o.version != t.version {
		return fail("version changed from %d to %d", t.version, o.version)
	}
	if o.block == nil {
		return fail("managed block for %s not found", rt.Handler)
	}
	if f := o.foreign(p.path); len(f) > 0 {
		return fail("line %d: runtime %s also defined outside the managed block", f[0].line, rt.Handler)
	}
	got, ok := lookup(o.doc.tree, p.path)
	if !ok {
		return fail("no table at %s", style{}.keyPath(p.path))
	}
	if want := rt.table(); !equalValues(got, want) {
		return fail("table %s is %v, want %v", style{}.keyPath(p.path), got, want)
	}
	if err := checkReaders(t.doc.tree, o.doc.tree, t.version, p.majors, t.doc.includesBase, rt); err != nil {
		return fail("%v", err)
	}
	return nil
}

// checkRemoved re-parses a document after removal and checks that no managed block is left.
func checkRemoved(out []byte, handler string, opts PatchOptions) error {
	t, err := load(out, handler, opts)
	if err != nil {
		return fmt.Errorf("%w: %w: %v", ErrUnsafeEdit, errOutputCheck, err)
	}
	if t.block != nil || len(t.doc.adopted(handler)) > 0 {
		return fmt.Errorf("%w: %w: managed lines for %s left after removal", ErrUnsafeEdit, errOutputCheck, handler)
	}
	return nil
}

// equalValues compares decoded TOML values, with NaN equal to NaN.
func equalValues(a, b any) bool {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok || bok {
		if !aok || !bok || len(am) != len(bm) {
			return false
		}
		for k, av := range am {
			bv, ok := bm[k]
			if !ok || !equalValues(av, bv) {
				return false
			}
		}
		return true
	}
	if af, ok := a.(float64); ok {
		if bf, ok := b.(float64); ok && math.IsNaN(af) && math.IsNaN(bf) {
			return true
		}
	}
	return reflect.DeepEqual(a, b)
}
