// Package wazerorun compiles and runs one WASI preview1 module with wazero the way a container runs:
// argv, environment, a host directory as the guest's "/" and others as volumes (each confined by
// internal/wazerofs: no path the guest resolves leaves its mount), stdio, real clocks and
// randomness, a cap on linear memory, an on-disk compilation cache, and prompt termination when the
// run's context is cancelled (a guest blocked in sleep or poll_oneoff included), reported as a
// signal exit code.
//
// It knows nothing about containerd; internal/wazeroshim drives it.
package wazerorun
