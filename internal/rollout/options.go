package rollout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"

	"github.com/wasmkube/wasmkube/pkg/containerdcfg"
)

// ErrInvalidOption marks a Shim option the installer cannot write as a typed TOML value.
var ErrInvalidOption = errors.New("invalid option")

var bareKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Options validates a Shim's options (raw JSON values, as RawOptions returns them) and converts them,
// sorted by name, to typed containerd options: a string, a boolean, an integer (a JSON number without
// fraction or exponent, within int64), a float (any other JSON number, finite), or an array of strings.
func Options(opts map[string]json.RawMessage) ([]containerdcfg.Option, error) {
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]containerdcfg.Option, 0, len(keys))
	for _, k := range keys {
		if !bareKey.MatchString(k) {
			return nil, fmt.Errorf("%w: option name %q must be a TOML bare key (letters, digits and '_', not starting with a digit)", ErrInvalidOption, k)
		}
		v, err := optionValue(opts[k])
		if err != nil {
			return nil, fmt.Errorf("%w: option %s: %v", ErrInvalidOption, k, err)
		}
		out = append(out, containerdcfg.Option{Key: k, Value: v})
	}
	return out, nil
}

// optionValue converts one raw JSON value, keeping a number's text so that integers stay integers.
func optionValue(raw json.RawMessage) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	switch v := v.(type) {
	case string, bool:
		return v, nil
	case json.Number:
		if !bytes.ContainsAny([]byte(v), ".eE") {
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("integer %s is outside int64 (%d to %d), which containerd's TOML cannot hold", v, int64(math.MinInt64), int64(math.MaxInt64))
			}
			return n, nil
		}
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return nil, fmt.Errorf("number %s is outside the float64 range", v)
		}
		return f, nil
	case []any:
		out := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("list %s: lists may hold only strings", string(raw))
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: values must be strings, booleans, numbers or lists of strings", string(raw))
}

// OptionFlags renders a Shim's options (see Options) as the installer's --option values, which
// containerdcfg.ParseOption reads back exactly: key=<TOML value>.
func OptionFlags(opts map[string]json.RawMessage) ([]string, error) {
	typed, err := Options(opts)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(typed))
	for i, o := range typed {
		out[i] = o.String()
	}
	return out, nil
}
