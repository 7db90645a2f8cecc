package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
)

// ErrInvalidOption marks a Shim option the installer cannot write as a typed TOML value.
var ErrInvalidOption = errors.New("invalid option")

var bareKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// OptionFlags validates a Shim's options and renders them, sorted by name, as the installer's
// --option=k=v values: booleans and numbers bare, strings in double quotes, so that each keeps its type
// ("true" the string stays a string).
func OptionFlags(opts map[string]json.RawMessage) ([]string, error) {
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if !bareKey.MatchString(k) {
			return nil, fmt.Errorf("%w: option name %q must be a TOML bare key (letters, digits and '_', not starting with a digit)", ErrInvalidOption, k)
		}
		var v any
		if err := json.Unmarshal(opts[k], &v); err != nil {
			return nil, fmt.Errorf("%w: option %s: %v", ErrInvalidOption, k, err)
		}
		switch v := v.(type) {
		case bool:
			out = append(out, fmt.Sprintf("%s=%t", k, v))
		case float64:
			out = append(out, k+"="+string(opts[k]))
		case string:
			out = append(out, k+"="+strconv.Quote(v))
		default:
			return nil, fmt.Errorf("%w: option %s is %s; values must be strings, booleans or numbers", ErrInvalidOption, k, string(opts[k]))
		}
	}
	return out, nil
}
