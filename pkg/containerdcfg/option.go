package containerdcfg

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2"
)

// Option is one runtime option, written under the runtime's `options` table. Value is a string, bool,
// int64, float64 or []string (written as a TOML string, boolean, integer, float or array of strings);
// an int is taken as int64.
type Option struct {
	Key   string
	Value any
}

// tomlLike matches flag values that ParseOption reads as TOML values: quoted strings, arrays, numbers
// (also inf and nan) and booleans. Anything else is a plain string.
var tomlLike = regexp.MustCompile(`^(["'\[]|[+-]?[0-9]|[+-]?(inf|nan)$|true$|false$)`)

// ParseOption parses "key=value" as given to a flag. A value that looks like a TOML value (it starts with
// a quote, a bracket, a digit or a sign, or is true, false, inf or nan) must be one: a basic or literal
// string, an array of strings, an integer (within int64), a float or a boolean, with TOML's escapes and
// number syntax. Any other value is the string exactly as written ("/usr/bin/runc", "" for "key=").
// ParseOption(o.String()) == o for every valid option, so String is the way to pass an option on.
func ParseOption(kv string) (Option, error) {
	key, value, ok := strings.Cut(kv, "=")
	if !ok {
		return Option{}, fmt.Errorf("%w: option %q is not key=value", ErrInvalidRuntime, kv)
	}
	o := Option{Key: key, Value: value}
	if tomlLike.MatchString(value) {
		v, err := parseValue(value)
		if err != nil {
			return Option{}, fmt.Errorf("%w: option %s: %s: %w", ErrInvalidRuntime, key, value, err)
		}
		o.Value = v
	}
	return o, o.validate()
}

// parseValue decodes one TOML value literal into a string, bool, int64, float64 or []string.
func parseValue(value string) (any, error) {
	if strings.ContainsAny(value, "\r\n") {
		return nil, errors.New("a value must be on one line (write a line break in a string as \\n)")
	}
	var doc map[string]any
	if err := toml.Unmarshal([]byte("v = "+value+"\n"), &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			err = errors.New(de.Error())
		}
		return nil, fmt.Errorf("not a TOML value (quote a string, e.g. \"%s\"): %w", strings.ReplaceAll(value, `"`, `\"`), err)
	}
	v, ok := doc["v"]
	if !ok || len(doc) != 1 {
		return nil, errors.New("not one TOML value")
	}
	switch v := v.(type) {
	case string, bool, int64, float64:
		return v, nil
	case []any:
		out := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("arrays may hold only strings, element %d is a %s", i, typeName(e))
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, fmt.Errorf("a %s is not a supported option value (strings, booleans, integers, floats and arrays of strings are)", typeName(v))
}

// typeName names a decoded TOML value's type for messages.
func typeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case int64:
		return "integer"
	case float64:
		return "float"
	case []any:
		return "array"
	case map[string]any:
		return "table"
	}
	return strings.TrimPrefix(fmt.Sprintf("%T", v), "toml.") // LocalDate, LocalTime, LocalDateTime, time.Time
}

// String returns the option as ParseOption reads it: key=value with the value as a TOML literal (strings
// always double-quoted), so that the value and its type survive exactly. An invalid option gives
// key=<invalid TYPE>.
func (o Option) String() string {
	if o.validate() != nil {
		return fmt.Sprintf("%s=<invalid %T>", o.Key, o.Value)
	}
	return o.Key + "=" + style{eol: "\n"}.value(o.normalized())
}

func (o Option) validate() error {
	if o.Key == "" || !utf8.ValidString(o.Key) || hasControl(o.Key) || strings.Contains(o.Key, "=") {
		return fmt.Errorf("%w: option key %q must be non-empty UTF-8 without control characters or '='", ErrInvalidRuntime, o.Key)
	}
	switch v := o.Value.(type) {
	case bool, int64, int, float64:
	case string:
		if !utf8.ValidString(v) {
			return fmt.Errorf("%w: option %s: value is not valid UTF-8", ErrInvalidRuntime, o.Key)
		}
	case []string:
		for i, s := range v {
			if !utf8.ValidString(s) {
				return fmt.Errorf("%w: option %s: element %d is not valid UTF-8", ErrInvalidRuntime, o.Key, i)
			}
		}
	default:
		return fmt.Errorf("%w: option %s: value of type %T (want string, bool, int64, float64 or []string)", ErrInvalidRuntime, o.Key, o.Value)
	}
	return nil
}

// normalized returns the value in the types Option.Value documents (int -> int64, nil slice -> empty).
func (o Option) normalized() any {
	switch v := o.Value.(type) {
	case int:
		return int64(v)
	case []string:
		if v == nil {
			return []string{}
		}
	}
	return o.Value
}

// decoded returns the value as go-toml decodes it from a document (arrays as []any), for output checks.
func (o Option) decoded() any {
	v := o.normalized()
	if ss, ok := v.([]string); ok {
		out := make([]any, len(ss))
		for i, s := range ss {
			out[i] = s
		}
		return out
	}
	return v
}

// Equal reports whether two options have the same key and the same typed value (NaN equals NaN).
func (o Option) Equal(p Option) bool {
	if o.Key != p.Key {
		return false
	}
	a, b := o.normalized(), p.normalized()
	switch a := a.(type) {
	case float64:
		b, ok := b.(float64)
		return ok && (a == b && math.Signbit(a) == math.Signbit(b) || math.IsNaN(a) && math.IsNaN(b))
	case []string:
		b, ok := b.([]string)
		return ok && slices.Equal(a, b)
	}
	return a == b
}
