package containerdcfg

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// document is a parsed containerd config: the original bytes plus, for every top-level TOML expression,
// its full key path and the whole lines it occupies.
type document struct {
	src      []byte
	masked   []byte         // src with template lines blanked out
	tree     map[string]any // decoded masked
	exprs    []expr
	template bool // has `{{ ... }}` lines
	// includesBase: a template line includes k3s/rke2's base template, which defines runtimes (runc)
	// that this document does not show.
	includesBase bool
	style        style
}

// expr is one top-level expression: a [table] or [[array table]] header, or a key = value line.
type expr struct {
	kind       unstable.Kind // unstable.Table, unstable.ArrayTable or unstable.KeyValue
	path       []string      // header key, or current table + dotted key for a key/value
	value      unstable.Kind // kind of a key/value's value
	start, end int           // byte range of the whole lines, end including the line break
	line       int           // 1-based line of start
}

// isTemplateLine reports whether a line (without its line break) is a Go template action on its own,
// like `{{ template "base" . }}`.
func isTemplateLine(line []byte) bool {
	t := bytes.Trim(line, " \t\r")
	return len(t) >= 4 && bytes.HasPrefix(t, []byte("{{")) && bytes.HasSuffix(t, []byte("}}"))
}

// lines splits b into lines, each including its "\n" (the last one may lack it).
func lines(b []byte) [][]byte {
	return bytes.SplitAfter(b, []byte("\n"))
}

// trimEOL drops a trailing "\n" or "\r\n".
func trimEOL(line []byte) []byte {
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r"))
}

// parse parses doc with template lines masked by spaces, so byte offsets stay those of doc.
func parse(doc []byte) (*document, error) {
	d := &document{src: doc, style: style{eol: "\n"}}
	if i := bytes.IndexByte(doc, '\n'); i > 0 && doc[i-1] == '\r' {
		d.style.eol = "\r\n"
	}
	masked := make([]byte, 0, len(doc))
	for _, l := range lines(doc) {
		if isTemplateLine(trimEOL(l)) {
			d.template = true
			d.includesBase = d.includesBase || bytes.Contains(l, []byte(`template "base"`))
			n := len(trimEOL(l))
			masked = append(masked, bytes.Repeat([]byte(" "), n)...)
			masked = append(masked, l[n:]...)
			continue
		}
		masked = append(masked, l...)
	}
	d.masked = masked
	if err := toml.Unmarshal(masked, &d.tree); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return nil, fmt.Errorf("%w: line %d column %d: %s", ErrParse, row, col, de.Error())
		}
		return nil, fmt.Errorf("%w: %w", ErrParse, err)
	}
	if d.tree == nil {
		d.tree = map[string]any{}
	}
	var p unstable.Parser
	p.Reset(masked)
	var table []string
	line, counted := 1, 0 // line number at byte offset counted; expressions come in document order
	for p.NextExpression() {
		n := p.Expression()
		e := expr{kind: n.Kind}
		var keys []string
		var first uint32
		for it, i := n.Key(), 0; it.Next(); i++ {
			k := it.Node()
			if i == 0 {
				first = k.Raw.Offset
			}
			keys = append(keys, string(k.Data))
			if n.Kind != unstable.KeyValue && p.Raw(k.Raw)[0] == '\'' {
				d.style.single = true
			}
		}
		last := first
		switch n.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = keys
			e.path = keys
		case unstable.KeyValue:
			e.path = append(slices.Clip(table), keys...)
			e.value = n.Value().Kind
			last = n.Raw.Offset + n.Raw.Length - 1
		}
		e.start = bytes.LastIndexByte(doc[:first], '\n') + 1
		e.end = len(doc)
		if i := bytes.IndexByte(doc[last:], '\n'); i >= 0 {
			e.end = int(last) + i + 1
		}
		line += bytes.Count(doc[counted:e.start], []byte("\n"))
		counted = e.start
		e.line = line
		d.exprs = append(d.exprs, e)
	}
	if err := p.Error(); err != nil { // toml.Unmarshal accepted it, so this is not expected
		return nil, fmt.Errorf("%w: %w", ErrParse, err)
	}
	return d, nil
}

// inExpr reports whether byte offset off lies on a line of an expression (such as inside a multi-line
// string), where a marker-looking line is data, not a comment.
func (d *document) inExpr(off int) bool {
	// exprs are in document order and never share a line.
	i := sort.Search(len(d.exprs), func(i int) bool { return d.exprs[i].end > off })
	return i < len(d.exprs) && d.exprs[i].start <= off
}

// Marker comments. The handler is an RFC 1123 label, so it needs no escaping.
func beginMarker(handler string) string { return markerPrefix + "begin runtime " + handler }
func endMarker(handler string) string   { return markerPrefix + "end runtime " + handler }
func adoptPrefix(handler string) string { return "# adopted by wasmkube, runtime " + handler + ": " }

const markerPrefix = "# managed by wasmkube: "

// The default block holds the runtime containerd 1.x would define by itself (see defaultRuntime). It
// is shared by every handler's block and leaves with the last of them.
const (
	beginDefault = markerPrefix + "begin containerd 1.x default runtime"
	endDefault   = markerPrefix + "end containerd 1.x default runtime"
)

// block is one of wasmkube's managed blocks: whole lines from the begin to the end marker.
type block struct {
	start, end int  // byte range, end including the end marker's line break if any
	line       int  // 1-based line of the begin marker
	terminated bool // the end marker line ends with a line break
}

func (b *block) contains(e expr) bool { return b != nil && e.start >= b.start && e.end <= b.end }

// block finds the managed block of handler; nil if there is none.
func (d *document) block(handler string) (*block, error) {
	return d.span(beginMarker(handler), endMarker(handler), "runtime "+handler)
}

// defaultBlock finds the block holding containerd 1.x's default runtime; nil if there is none.
func (d *document) defaultBlock() (*block, error) {
	return d.span(beginDefault, endDefault, "containerd 1.x's default runtime")
}

// span finds the block between the begin and end marker lines; nil if there is none. Markers inside
// multi-line values are ignored; a lone, repeated or misordered marker is ErrUnsafeEdit.
func (d *document) span(beginText, endText, what string) (*block, error) {
	begin, end := []byte(beginText), []byte(endText)
	var found *block
	open := -1
	off := 0
	for i, l := range lines(d.src) {
		text := trimEOL(l)
		switch {
		case d.inExpr(off):
		case bytes.Equal(text, begin):
			if open >= 0 || found != nil {
				return nil, fmt.Errorf("%w: line %d: second begin marker for %s; repair the managed block by hand", ErrUnsafeEdit, i+1, what)
			}
			found = &block{start: off, line: i + 1}
			open = i
		case bytes.Equal(text, end):
			if open < 0 {
				return nil, fmt.Errorf("%w: line %d: end marker for %s without a begin marker; repair the managed block by hand", ErrUnsafeEdit, i+1, what)
			}
			found.end = off + len(l)
			found.terminated = len(text) < len(l)
			open = -1
		}
		off += len(l)
	}
	if open >= 0 {
		return nil, fmt.Errorf("%w: line %d: begin marker for %s without an end marker; repair the managed block by hand", ErrUnsafeEdit, open+1, what)
	}
	return found, nil
}

// handlers returns the handlers that have a managed block in the document, in document order.
func (d *document) handlers() []string {
	prefix := []byte(beginMarker(""))
	var out []string
	off := 0
	for _, l := range lines(d.src) {
		if text := trimEOL(l); bytes.HasPrefix(text, prefix) && !d.inExpr(off) {
			out = append(out, string(text[len(prefix):]))
		}
		off += len(l)
	}
	return out
}

// blocks returns every managed block of the document: each handler's and the default runtime's.
func (d *document) blocks() ([]*block, error) {
	var out []*block
	for _, h := range d.handlers() {
		b, err := d.block(h)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	b, err := d.defaultBlock()
	if err != nil {
		return nil, err
	}
	if b != nil {
		out = append(out, b)
	}
	return out, nil
}

// treeWithout decodes the document with the lines of the given blocks blanked out: the configuration as
// it is without wasmkube's edits.
func (d *document) treeWithout(blocks []*block) (map[string]any, error) {
	if len(blocks) == 0 {
		return d.tree, nil
	}
	masked := bytes.Clone(d.masked)
	for _, b := range blocks {
		for i := b.start; i < b.end; i++ {
			if masked[i] != '\n' && masked[i] != '\r' {
				masked[i] = ' '
			}
		}
	}
	var tree map[string]any
	if err := toml.Unmarshal(masked, &tree); err != nil {
		return nil, fmt.Errorf("%w: without wasmkube's blocks: %w", ErrUnsafeEdit, err)
	}
	if tree == nil {
		tree = map[string]any{}
	}
	return tree, nil
}

// adopted returns the start offsets of the lines wasmkube commented out when it adopted handler.
func (d *document) adopted(handler string) []int {
	prefix := []byte(adoptPrefix(handler))
	var offs []int
	off := 0
	for _, l := range lines(d.src) {
		if bytes.HasPrefix(l, prefix) && !d.inExpr(off) {
			offs = append(offs, off)
		}
		off += len(l)
	}
	return offs
}

// hasPrefix reports whether path starts with prefix.
func hasPrefix(path, prefix []string) bool {
	return len(path) >= len(prefix) && slices.Equal(path[:len(prefix)], prefix)
}

// lookup walks the decoded tree along path.
func lookup(tree map[string]any, path []string) (any, bool) {
	var cur any = tree
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}
