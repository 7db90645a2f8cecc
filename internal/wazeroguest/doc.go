// Package wazeroguest provides the WebAssembly guests that the wazero shim's tests and benchmark run:
// a Go program built for GOOS=wasip1 GOARCH=wasm from testdata/guest (its first argument picks a
// behaviour: hello, exit, sleep, spin, grow, cat, write, env, burn) and a tiny hand-assembled WASI
// module that writes one line and exits, for measuring start-up without Go's runtime.
package wazeroguest
