package containerdcfg

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Option is one runtime option, written under the runtime's `options` table. Value is a string, bool,
// int64 or float64 (written as a TOML string, boolean, integer or float); an int is taken as int64.
type Option struct {
	Key   string
	Value any
}

var (
	intRE   = regexp.MustCompile(`^[+-]?[0-9]+$`)
	floatRE = regexp.MustCompile(`^[+-]?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)
)

// ParseOption parses "key=value" as given to a flag: true/false become a bool, decimal integers an int64,
// decimal floats (with a fraction or exponent) a float64, a value in double quotes the string between
// them (taken verbatim, so `"true"` is the string true), and anything else the string as written.
func ParseOption(kv string) (Option, error) {
	key, value, ok := strings.Cut(kv, "=")
	if !ok {
		return Option{}, fmt.Errorf("%w: option %q is not key=value", ErrInvalidRuntime, kv)
	}
	o := Option{Key: key}
	switch {
	case value == "true" || value == "false":
		o.Value = value == "true"
	case intRE.MatchString(value):
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return Option{}, fmt.Errorf("%w: option %q: integer out of range: %w", ErrInvalidRuntime, kv, err)
		}
		o.Value = n
	case floatRE.MatchString(value):
		f, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return Option{}, fmt.Errorf("%w: option %q: float out of range: %w", ErrInvalidRuntime, kv, err)
		}
		o.Value = f
	case len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"':
		o.Value = value[1 : len(value)-1]
	default:
		o.Value = value
	}
	return o, o.validate()
}

func (o Option) validate() error {
	if o.Key == "" || !utf8.ValidString(o.Key) || hasControl(o.Key) {
		return fmt.Errorf("%w: option key %q must be non-empty UTF-8 without control characters", ErrInvalidRuntime, o.Key)
	}
	switch v := o.Value.(type) {
	case bool, int64, int, float64:
	case string:
		if !utf8.ValidString(v) {
			return fmt.Errorf("%w: option %s: value is not valid UTF-8", ErrInvalidRuntime, o.Key)
		}
	default:
		return fmt.Errorf("%w: option %s: value of type %T (want string, bool, int64 or float64)", ErrInvalidRuntime, o.Key, o.Value)
	}
	return nil
}

// normalized returns the value as go-toml decodes it (int -> int64).
func (o Option) normalized() any {
	if n, ok := o.Value.(int); ok {
		return int64(n)
	}
	return o.Value
}

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
			opts[o.Key] = o.normalized()
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
	}
	panic(fmt.Sprintf("containerdcfg: unvalidated option value %T", v)) // validate() rejects other types
}
