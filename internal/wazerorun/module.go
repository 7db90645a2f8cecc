package wazerorun

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// PageSize is the size of one page of Wasm linear memory.
const PageSize = 65536

// StartFunction is the WASI command entry point, run when a Process names no other export.
const StartFunction = "_start"

// Sentinel errors; match them with errors.Is.
var (
	// ErrMemoryLimit: the module needs more linear memory than the limit allows.
	ErrMemoryLimit = errors.New("memory limit exceeded")
	// ErrNoEntry: the module does not export the requested entry function.
	ErrNoEntry = errors.New("entry function not exported")
)

// Options configure how a module is compiled and how much memory its instances may use.
type Options struct {
	// CacheDir is the on-disk compilation cache. wazero keys its entries by the module's sha256 and
	// keeps them in a subdirectory named after the wazero version, so a module compiled once is
	// not compiled again by any process sharing the directory. Empty: no disk cache.
	CacheDir string
	// MemoryLimit caps the linear memory of every instance, in bytes (rounded down to whole pages).
	// Zero or negative: only the module's own maximum applies.
	MemoryLimit int64
}

// Module is a WASI module compiled in its own wazero runtime. Prepare the runtime, Compile the
// module into it, Run it once or more, then Close it.
type Module struct {
	rt       wazero.Runtime
	cache    wazero.CompilationCache
	cacheDir string
	before   int // files in cacheDir before compiling, -1 without a disk cache
	compiled wazero.CompiledModule
	limit    uint64

	// CacheHit is true when CacheDir already held this module's machine code.
	CacheHit bool
	// CompileTime is how long compiling (or loading from the cache) took.
	CompileTime time.Duration
}

// Prepare opens the compilation cache and starts a runtime with WASI preview1: everything
// compiling needs besides the module's bytes, so callers can do it while they read them.
func Prepare(ctx context.Context, o Options) (_ *Module, err error) {
	m := &Module{cacheDir: o.CacheDir, before: -1}
	if o.MemoryLimit > 0 {
		m.limit = uint64(o.MemoryLimit) / PageSize * PageSize
	}
	rc := wazero.NewRuntimeConfig().WithCloseOnContextDone(true)
	if o.CacheDir != "" {
		if m.cache, err = wazero.NewCompilationCacheWithDir(o.CacheDir); err != nil {
			return nil, fmt.Errorf("open compilation cache %s: %w", o.CacheDir, err)
		}
		rc = rc.WithCompilationCache(m.cache)
		m.before = countFiles(o.CacheDir)
	}
	m.rt = wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, m.rt); err != nil {
		_ = m.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("instantiate WASI preview1: %w", err)
	}
	return m, nil
}

// Compile validates and compiles wasm, once per Module. It fails with ErrMemoryLimit when the
// module's minimum memory is above Options.MemoryLimit. The caller still Closes m after an error.
func (m *Module) Compile(ctx context.Context, wasm []byte) (err error) {
	if m.compiled != nil {
		return errors.New("the module is already compiled")
	}
	start := time.Now()
	cctx := experimental.WithCompilationWorkers(ctx, runtime.GOMAXPROCS(0))
	if m.compiled, err = m.rt.CompileModule(cctx, wasm); err != nil {
		return fmt.Errorf("compile module: %w", err)
	}
	m.CompileTime = time.Since(start)
	if m.before >= 0 {
		m.CacheHit = countFiles(m.cacheDir) == m.before
	}
	if m.limit > 0 {
		mems := m.compiled.ImportedMemories()
		for _, d := range m.compiled.ExportedMemories() {
			mems = append(mems, d)
		}
		for _, d := range mems {
			if need := uint64(d.Min()) * PageSize; need > m.limit {
				return fmt.Errorf("%w: the module needs at least %s of linear memory, the limit is %s",
					ErrMemoryLimit, mib(need), mib(m.limit))
			}
		}
	}
	return nil
}

// CheckEntry reports ErrNoEntry unless the module exports a function called entry ("" means _start).
func (m *Module) CheckEntry(entry string) error {
	if entry == "" {
		entry = StartFunction
	}
	if _, ok := m.compiled.ExportedFunctions()[entry]; !ok {
		return fmt.Errorf("%w: the module exports no function %q", ErrNoEntry, entry)
	}
	return nil
}

// Close releases the compiled code and the runtime (the disk cache stays).
func (m *Module) Close(ctx context.Context) error {
	var errs []error
	if m.rt != nil {
		errs = append(errs, m.rt.Close(ctx))
	}
	if m.cache != nil {
		errs = append(errs, m.cache.Close(ctx))
	}
	return errors.Join(errs...)
}

// exportedFunction returns the instance's export called name, or nil.
func exportedFunction(mod api.Module, name string) api.Function {
	if _, ok := mod.ExportedFunctionDefinitions()[name]; !ok {
		return nil
	}
	return mod.ExportedFunction(name)
}

// countFiles counts regular files under dir (the compilation cache), -1 when it cannot be read.
func countFiles(dir string) int {
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			n++
		}
		return nil
	})
	if err != nil {
		return -1
	}
	return n
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
