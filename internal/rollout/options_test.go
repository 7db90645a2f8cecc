package rollout

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestOptionFlags(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		opts map[string]string // raw JSON values
		want []string
		err  bool
	}{
		"none": {opts: nil, want: []string{}},
		"typed and sorted": {opts: map[string]string{"SystemdCgroup": "true", "Level": "3", "Ratio": "1.5", "Name": `"x y"`, "Flag": `"true"`},
			want: []string{`Flag="true"`, "Level=3", `Name="x y"`, "Ratio=1.5", "SystemdCgroup=true"}},
		"quotes escaped":          {opts: map[string]string{"P": `"a\"b"`}, want: []string{`P="a\"b"`}},
		"backslash, tab, unicode": {opts: map[string]string{"P": `"C:\\path\tx\u00e9\u65e5"`}, want: []string{`P="C:\\path\tx` + "é日" + `"`}},
		"list of strings":         {opts: map[string]string{"L": `["a", "b\"c", ""]`}, want: []string{`L=["a", "b\"c", ""]`}},
		"empty list":              {opts: map[string]string{"L": `[]`}, want: []string{`L=[]`}},
		"int64 bounds":            {opts: map[string]string{"A": "9223372036854775807", "B": "-9223372036854775808"}, want: []string{"A=9223372036854775807", "B=-9223372036854775808"}},
		"float forms":             {opts: map[string]string{"A": "2.0", "B": "1e-3", "C": "-0.5E2"}, want: []string{"A=2.0", "B=0.001", "C=-50.0"}},
		"beyond int64":            {opts: map[string]string{"A": "9223372036854775808"}, err: true},
		"list of numbers":         {opts: map[string]string{"A": `["a", 1]`}, err: true},
		"bad name":                {opts: map[string]string{"bad key": "1"}, err: true},
		"leading digit":           {opts: map[string]string{"1x": "1"}, err: true},
		"object value":            {opts: map[string]string{"A": `{"x":1}`}, err: true},
		"null value":              {opts: map[string]string{"A": `null`}, err: true},
	} {
		t.Run(name, func(t *testing.T) {
			raw := map[string]json.RawMessage{}
			for k, v := range tc.opts {
				raw[k] = json.RawMessage(v)
			}
			got, err := OptionFlags(raw)
			if tc.err {
				if !errors.Is(err, ErrInvalidOption) {
					t.Fatalf("err = %v, want ErrInvalidOption", err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("OptionFlags = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
