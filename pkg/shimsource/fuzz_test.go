package shimsource

import (
	"bytes"
	"testing"
)

// FuzzScanTar feeds arbitrary layer bytes to the layer scanner: it must not panic, and what it
// extracts must respect the size cap.
func FuzzScanTar(f *testing.F) {
	f.Add(tarOf(&testing.T{}, file("containerd-shim-spin-v2", "bin")), "containerd-shim-spin-v2")
	f.Add(tarOf(&testing.T{}, dirEntry("a/"), symlinkTo("a/b", "../../x"), file(".wh.y", "")), "a/b/c")
	f.Add(gz(&testing.T{}, tarOf(&testing.T{}, file("opt/.wh..wh..opq", ""), hardlinkTo("z", "opt/q"))), "z")
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0}, "x")
	f.Fuzz(func(t *testing.T, layer []byte, target string) {
		target = cleanEntry(target)
		if target == "" {
			return
		}
		st, err := newStaged(t.TempDir(), "bin")
		if err != nil {
			t.Fatal(err)
		}
		defer st.discard()
		const limit = 1 << 16
		res, next, err := scanTar(bytes.NewReader(layer), target, st, limit)
		if err != nil {
			return
		}
		if st.n > limit || (res != found && st.n != 0) {
			t.Fatalf("outcome %d wrote %d bytes", res, st.n)
		}
		if (res == symlink || res == hardlink) && (next == "" || next != cleanEntry(next)) {
			t.Fatalf("link target %q is not clean", next)
		}
	})
}

// FuzzParseDockerKeychain: arbitrary config content yields a keychain or an error, never a panic.
func FuzzParseDockerKeychain(f *testing.F) {
	f.Add([]byte(`{"auths":{"r.example":{"auth":"dTpw"}}}`))
	f.Add([]byte(`{"r.example":{"username":"u","password":"p"}}`))
	f.Add([]byte(`{"auths":null}`))
	f.Fuzz(func(_ *testing.T, data []byte) {
		_, _ = parseDockerKeychain(data, "fuzz")
	})
}
