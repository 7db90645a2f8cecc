// Package wazeroguest provides the WebAssembly guests that the wazero shim's tests and benchmark run:
// a Go program built for GOOS=wasip1 GOARCH=wasm from testdata/guest (its first argument picks a
// behaviour: hello, exit, sleep, spin, grow, cat, write, create, env, burn), a tiny hand-assembled
// WASI module that writes one line and exits, for measuring start-up without Go's runtime, and the
// sandbox probe (testdata/probe), which calls WASI's file functions directly to try ways out of its
// mounts.
package wazeroguest
