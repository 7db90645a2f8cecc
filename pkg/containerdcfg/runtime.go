package containerdcfg

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Runtime is one containerd runtime handler.
type Runtime struct {
	Handler string   // runtime name == RuntimeClass handler, e.g. "wazero"
	Type    string   // runtime_type, e.g. "io.containerd.wazero.v1"
	Path    string   // runtime_path; "" omits it
	Options []Option // written in this order
}

func (rt Runtime) validate() error {
	if err := validHandler(rt.Handler); err != nil {
		return err
	}
	if rt.Type == "" || !utf8.ValidString(rt.Type) || hasControl(rt.Type) {
		return fmt.Errorf("%w: runtime %s: runtime type %q must be non-empty UTF-8 without control characters", ErrInvalidRuntime, rt.Handler, rt.Type)
	}
	if !utf8.ValidString(rt.Path) || hasControl(rt.Path) {
		return fmt.Errorf("%w: runtime %s: runtime path %q must be UTF-8 without control characters", ErrInvalidRuntime, rt.Handler, rt.Path)
	}
	seen := map[string]bool{}
	for _, o := range rt.Options {
		if err := o.validate(); err != nil {
			return fmt.Errorf("runtime %s: %w", rt.Handler, err)
		}
		if seen[o.Key] {
			return fmt.Errorf("%w: runtime %s: option %s given twice", ErrInvalidRuntime, rt.Handler, o.Key)
		}
		seen[o.Key] = true
	}
	return nil
}

// table returns the runtime table as go-toml decodes it, for the output check.
func (rt Runtime) table() map[string]any {
	t := map[string]any{"runtime_type": rt.Type}
	if rt.Path != "" {
		t["runtime_path"] = rt.Path
	}
	if len(rt.Options) > 0 {
		opts := make(map[string]any, len(rt.Options))
		for _, o := range rt.Options {
			opts[o.Key] = o.decoded()
		}
		t["options"] = opts
	}
	return t
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// style is how the document quotes: containerd 2.x writes single-quoted keys and strings, 1.x double.
type style struct {
	single bool   // prefer 'literal' strings where they can hold the text
	eol    string // "\n" or "\r\n"
}

func isBare(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func (s style) key(k string) string {
	if isBare(k) {
		return k
	}
	return s.str(k)
}

func (s style) keyPath(path []string) string {
	parts := make([]string, len(path))
	for i, k := range path {
		parts[i] = s.key(k)
	}
	return strings.Join(parts, ".")
}

// str quotes a string: a literal string in single style when it can hold it, else a basic string.
func (s style) str(v string) string {
	if s.single && !strings.ContainsRune(v, '\'') && !hasControl(v) {
		return "'" + v + "'"
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range v {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

func (s style) value(v any) string {
	switch v := v.(type) {
	case string:
		return s.str(v)
	case bool:
		return strconv.FormatBool(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		switch {
		case math.IsNaN(v):
			return "nan"
		case math.IsInf(v, 1):
			return "inf"
		case math.IsInf(v, -1):
			return "-inf"
		}
		f := strconv.FormatFloat(v, 'g', -1, 64)
		if !strings.ContainsAny(f, ".e") {
			f += ".0"
		}
		return f
	case []string:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = s.str(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	panic(fmt.Sprintf("containerdcfg: unvalidated option value %T", v)) // validate() rejects other types
}
