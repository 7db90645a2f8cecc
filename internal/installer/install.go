package installer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"sync"
	"time"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
	"github.com/wasmkube/wasmkube/pkg/containerdcfg"
	"github.com/wasmkube/wasmkube/pkg/distro"
)

const defaultRollbackTimeout = 2 * time.Minute

// Install installs spec on the node: fetch, place the binary, patch the configuration, restart if the
// configuration changed, verify through the CRI, and roll back on failure. It never returns an error:
// the result says what happened.
func (in *Installer) Install(ctx context.Context, spec Spec) (r installerapi.Result) {
	start := in.now()
	r = installerapi.Result{Operation: installerapi.OpInstall, Shim: spec.Shim, Handler: spec.Handler, SpecHash: spec.SpecHash,
		Distro: in.Profile.Distro}
	defer func() {
		r.Changed = r.ConfigChanged || r.BinaryChanged || r.Restarted || r.RolledBack
		r.DurationMS = in.now().Sub(start).Milliseconds()
	}()
	s := in.begin(&r)
	// A plan without the lock first: a config or state that cannot be used fails here, before anything
	// on the host (not even the lock file) is created. Under the lock the plan is made again.
	if _, err := in.plan(spec); err != nil {
		s.done(StepPlan, err)
		r.Fail(reasonOf(err), err)
		return r
	}
	lock, err := in.lockNode(ctx, fmt.Sprintf("install of Shim %s, handler %s", spec.Shim, spec.Handler))
	if s.done(StepLock, err) != nil {
		r.Fail(reasonOf(err), err)
		return r
	}
	defer lock.unlock()
	p, err := in.plan(spec)
	if err == nil {
		err = in.removeTemps(spec.Handler, p.cfgFile, p.binPath)
	}
	if s.done(StepPlan, err) != nil {
		r.Fail(reasonOf(err), err)
		return r
	}
	r.ConfigPath, r.ConfigVersion, r.BinaryPath = p.cfgFile, p.version, p.binPath
	if e := p.entry; in.upToDate(p) {
		r.BinarySHA256, r.SourceDigest, r.Platform = e.BinarySHA256, e.SourceDigest, e.Platform
		var err error
		if r.ShimVersion, err = in.probe(ctx, p.binPath); s.done(StepBinary, err) != nil {
			r.Fail(reasonOf(err), fmt.Errorf("installed handler %s: %w", spec.Handler, err))
			return r
		}
		err = in.waitReady(ctx, spec.Handler, true)
		if s.done(StepVerify, err) != nil {
			r.Fail(installerapi.ReasonVerifyFailed, fmt.Errorf("installed handler %s is not live: %w", spec.Handler, err))
			return r
		}
		r.Success = true
		return r
	}
	e, err := in.open(p)
	if s.done(StepIntent, err) != nil {
		r.Fail(reasonOf(err), err)
		return r
	}
	if err := in.apply(ctx, p, e, s, &r); err != nil {
		r.Fail(reasonOf(err), err)
		in.rollback(ctx, p, e, &r)
		return r
	}
	r.Success = true
	return r
}

// upToDate reports whether the handler is installed from the same spec with the binary and the
// configuration exactly as recorded, so nothing needs fetching or writing.
func (in *Installer) upToDate(p *plan) bool {
	e := p.entry
	if e == nil || e.Phase != PhaseInstalled || e.Tx != nil || p.spec.SpecHash == "" || e.SpecHash != p.spec.SpecHash ||
		e.RuntimeType != p.spec.RuntimeType || e.BinaryPath != p.binPath || p.configChanges() {
		return false
	}
	fi, err := in.Host.Files.Stat(p.binPath)
	if err != nil {
		return false
	}
	if fi.Size() == e.BinarySize && fi.ModTime().UnixNano() == e.BinaryModNano {
		return true
	}
	sum, err := fileSHA256(in.Host.Files, p.binPath)
	return err == nil && sum == e.BinarySHA256
}

// open records the intent of a transaction in the state file, with backups of what it may change.
// An interrupted transaction for the same handler is resumed with its own backups.
func (in *Installer) open(p *plan) (*Entry, error) {
	files, st := in.Host.Files, p.state
	old := p.entry
	e := &Entry{Shim: p.spec.Shim, Handler: p.spec.Handler, RuntimeType: p.spec.RuntimeType, SpecHash: p.spec.SpecHash,
		Phase: PhasePending, BinaryPath: p.binPath, ConfigPath: p.cfgFile}
	switch {
	case old != nil && old.Tx != nil: // resume
		e.Phase, e.NeedRestart, e.Tx = old.Phase, old.NeedRestart, old.Tx
		if e.Phase == PhaseUninstalling || e.Phase == PhaseRemoved {
			e.Phase = PhasePending
		}
	default:
		dir := backupDir(in.Profile.StateFile, p.spec.Handler)
		e.Tx = &Tx{}
		if old != nil {
			e.Tx.Previous = old.clone()
		}
		if p.exists {
			e.Tx.ConfigBackup = path.Join(dir, "config.before")
			if err := files.WriteFile(e.Tx.ConfigBackup, p.current, 0o600); err != nil {
				return nil, fail(installerapi.ReasonStateFailed, fmt.Errorf("back up %s: %w", p.cfgFile, err))
			}
		} else {
			st.setCreated(p.cfgFile, true)
		}
		if _, err := files.Stat(p.binPath); err == nil {
			e.Tx.BinaryBackup = path.Join(dir, "binary.before")
			if err := copyFile(files, p.binPath, e.Tx.BinaryBackup); err != nil {
				return nil, fail(installerapi.ReasonStateFailed, fmt.Errorf("back up %s: %w", p.binPath, err))
			}
		}
	}
	st.Shims[e.Handler] = e
	if err := st.save(files, in.Profile.StateFile); err != nil {
		return nil, fail(installerapi.ReasonStateFailed, err)
	}
	return e, nil
}

// apply runs the steps of an open transaction.
func (in *Installer) apply(ctx context.Context, p *plan, e *Entry, s *stepper, r *installerapi.Result) error {
	files, st := in.Host.Files, p.state
	save := func() error {
		if err := st.save(files, in.Profile.StateFile); err != nil {
			return fail(installerapi.ReasonStateFailed, err)
		}
		return nil
	}

	// The binary comes first: a source that fails (wrong digest, checksum, platform) leaves the
	// configuration alone and costs no restart. Only the durable tail of the fetched binary (fsync,
	// rename into place, fsync of the directory, and for a builtin source the sha256 that records it:
	// most of the fetch for a large binary) overlaps the restart, and so does the probe that runs the
	// placed binary; the two join before verification, and a binary that cannot be placed or does not
	// run then rolls back like any other failure. The tail starts after the
	// configuration is written: the small fsyncs there would otherwise wait for the binary's data in
	// the file system journal. (Overlapping the whole fetch with the restart was measured: on two
	// shared cores it slowed the restart by about as much as it saved, and a bad source cost two restarts.)
	tmp := in.fetchDir(p.spec.Handler)
	defer files.RemoveAll(tmp)
	prepared := in.prepareRestart(p, e)
	fetched, err := in.fetch(ctx, tmp)
	<-prepared
	if s.done(StepFetch, err) != nil {
		return err
	}
	if err := in.configure(p, e, r, save); s.done(StepConfig, err) != nil {
		fetched.Discard()
		return err
	}
	placed := make(chan placement, 1)
	go func() { placed <- in.placeAndProbe(ctx, p, tmp, fetched) }()
	join := sync.OnceValue(func() placement { return <-placed })
	defer join() // before the fetch directory goes, and before a rollback looks at the binary

	if e.NeedRestart && e.Phase != PhaseRestarted {
		if err := in.Host.Restarter.Restart(ctx); err != nil {
			return s.done(StepRestart, fail(installerapi.ReasonRestartFailed, fmt.Errorf("restart containerd after patching %s: %w", p.cfgFile, err)))
		}
		r.Restarted = true
		e.Phase = PhaseRestarted
		if err := s.done(StepRestart, save()); err != nil {
			return err
		}
	}

	pl := join()
	if s.done(StepBinary, pl.err) != nil {
		return pl.err
	}
	art := pl.art
	r.SourceDigest, r.BinarySHA256, r.Platform, r.BinaryChanged = art.Digest, art.SHA256, art.Platform, pl.changed
	r.ShimVersion = pl.version
	if err := in.waitReady(ctx, p.spec.Handler, true); err != nil {
		return s.done(StepVerify, fail(installerapi.ReasonVerifyFailed, fmt.Errorf("handler %s after install: %w", p.spec.Handler, err)))
	}
	s.done(StepVerify, nil)

	return s.done(StepCommit, in.commit(p, e, art))
}

// prepareRestart runs the restarter's Prepare in the background when a restart is expected; the
// returned channel closes when it is done.
func (in *Installer) prepareRestart(p *plan, e *Entry) <-chan struct{} {
	done := make(chan struct{})
	pr, ok := in.Host.Restarter.(Preparer)
	if !ok || !(p.configChanges() || e.NeedRestart) || e.Phase == PhaseRestarted {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		_ = pr.Prepare() // Restart finds the process again and reports what is wrong
	}()
	return done
}

// configure writes the new configuration if it differs, recording first that a restart is owed.
func (in *Installer) configure(p *plan, e *Entry, r *installerapi.Result, save func() error) error {
	if !p.configChanges() {
		return nil
	}
	if !e.NeedRestart {
		e.NeedRestart = true
		if err := save(); err != nil {
			return err
		}
	}
	if err := in.Host.Files.WriteFile(p.cfgFile, p.desired, p.perm); err != nil {
		return fail(installerapi.ReasonConfigWriteFailed, fmt.Errorf("write containerd config %s: %w", p.cfgFile, err))
	}
	r.ConfigChanged = true
	e.Phase = PhaseConfigured
	return save()
}

// fetch gets the binary into a fresh directory tmp (host path), complete and verified.
func (in *Installer) fetch(ctx context.Context, tmp string) (Fetched, error) {
	files := in.Host.Files
	if err := files.RemoveAll(tmp); err != nil {
		return nil, fail(installerapi.ReasonBinaryFailed, fmt.Errorf("clear fetch directory %s: %w", tmp, err))
	}
	if err := files.MkdirAll(tmp, 0o700); err != nil {
		return nil, fail(installerapi.ReasonBinaryFailed, fmt.Errorf("create fetch directory %s: %w", tmp, err))
	}
	if in.Host.Fetcher == nil {
		return nil, fail(installerapi.ReasonInvalidArguments, errors.New("no shim source given"))
	}
	dest, err := files.HostPath(tmp)
	if err != nil {
		return nil, fail(installerapi.ReasonBinaryFailed, fmt.Errorf("fetch directory %s: %w", tmp, err))
	}
	fetched, err := in.Host.Fetcher.Fetch(ctx, dest)
	switch {
	case errors.Is(err, ErrUnsupportedPlatform):
		return nil, fail(installerapi.ReasonUnsupportedPlatform, err)
	case err != nil:
		return nil, fail(installerapi.ReasonFetchFailed, err)
	}
	return fetched, nil
}

// fetchDir is the private directory a handler's binary is fetched into: in the shim directory, so
// that the binary can be renamed into place.
func (in *Installer) fetchDir(handler string) string {
	return path.Join(in.Profile.ShimDir, ".wasmkube-fetch-"+handler)
}

// placement is the outcome of place.
type placement struct {
	art     Artifact
	changed bool
	// version is what the placed binary said about itself when probed.
	version string
	err     error
}

// placeAndProbe places the fetched binary and proves that it runs here: a binary for another
// architecture, or a corrupt one, fails the install and is rolled back like any other failure.
func (in *Installer) placeAndProbe(ctx context.Context, p *plan, tmp string, fetched Fetched) placement {
	pl := in.place(p, tmp, fetched)
	if pl.err == nil {
		pl.version, pl.err = in.probe(ctx, p.binPath)
	}
	return pl
}

// place makes the fetched binary durable and moves it to its final path unless an identical one is
// there.
func (in *Installer) place(p *plan, tmp string, fetched Fetched) placement {
	files := in.Host.Files
	art, err := fetched.Finish()
	if err != nil {
		return placement{err: fail(installerapi.ReasonBinaryFailed, fmt.Errorf("finish fetched shim binary: %w", err))}
	}
	dest, err := files.HostPath(tmp)
	if err != nil {
		return placement{err: fail(installerapi.ReasonBinaryFailed, fmt.Errorf("fetch directory %s: %w", tmp, err))}
	}
	if filepath.Dir(art.File) != filepath.Clean(dest) {
		return placement{err: fail(installerapi.ReasonFetchFailed, fmt.Errorf("fetcher wrote %s outside %s", art.File, dest))}
	}
	file := path.Join(tmp, filepath.Base(art.File))
	// The source hashed the file while writing it; an existing binary is hashed only when its size
	// matches (otherwise it differs anyway).
	if fi, err := files.Stat(p.binPath); err == nil {
		if nfi, err := files.Stat(file); err == nil && nfi.Size() == fi.Size() {
			have, err := fileSHA256(files, p.binPath)
			if err != nil {
				return placement{err: fail(installerapi.ReasonBinaryFailed, err)}
			}
			if have == art.SHA256 {
				return placement{art: art}
			}
		}
	}
	if err := files.Chmod(file, 0o755); err != nil {
		return placement{err: fail(installerapi.ReasonBinaryFailed, fmt.Errorf("chmod %s: %w", file, err))}
	}
	if err := files.Rename(file, p.binPath); err != nil {
		return placement{err: fail(installerapi.ReasonBinaryFailed, fmt.Errorf("place shim binary %s: %w", p.binPath, err))}
	}
	return placement{art: art, changed: true}
}

// commit closes the transaction: the entry becomes installed and the transaction's backups go.
func (in *Installer) commit(p *plan, e *Entry, art Artifact) error {
	files := in.Host.Files
	tx := e.Tx
	fi, err := files.Stat(p.binPath)
	if err != nil {
		return fail(installerapi.ReasonBinaryFailed, fmt.Errorf("stat %s: %w", p.binPath, err))
	}
	e.Phase, e.NeedRestart, e.Tx = PhaseInstalled, false, nil
	e.BinarySHA256, e.BinarySize, e.BinaryModNano = art.SHA256, fi.Size(), fi.ModTime().UnixNano()
	e.SourceDigest, e.Platform = art.Digest, art.Platform
	if err := p.state.save(files, in.Profile.StateFile); err != nil {
		return fail(installerapi.ReasonStateFailed, err)
	}
	in.dropBackups(tx)
	// The previous binary (another runtime type's, or an older installer's name): the config no longer
	// names it, and it goes unless another entry still does.
	if prev := tx.Previous; prev != nil && prev.BinaryPath != "" && prev.BinaryPath != e.BinaryPath &&
		p.state.binaryUser(e.Handler, prev.BinaryPath) == nil {
		files.Remove(prev.BinaryPath)
	}
	return nil
}

// dropBackups removes a finished transaction's backups (best effort: they are no longer referenced).
func (in *Installer) dropBackups(tx *Tx) {
	for _, f := range []string{tx.ConfigBackup, tx.BinaryBackup} {
		if f != "" {
			in.Host.Files.Remove(f)
		}
	}
}

// rollback restores the configuration and binary from the transaction's backups, restarts containerd
// if the configuration had changed, verifies it, and restores the state entry. It runs on its own
// deadline so that a run that timed out still cleans up.
func (in *Installer) rollback(ctx context.Context, p *plan, e *Entry, r *installerapi.Result) {
	timeout := in.RollbackTimeout
	if timeout == 0 {
		timeout = defaultRollbackTimeout
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	files, tx := in.Host.Files, e.Tx
	var errs []error
	configRestored, err := in.undoConfig(p, e)
	if err != nil {
		errs = append(errs, err)
	}
	changed := configRestored

	if tx.BinaryBackup != "" {
		want, _ := fileSHA256(files, tx.BinaryBackup)
		if have, _ := fileSHA256(files, p.binPath); have != want {
			if err := copyFile(files, tx.BinaryBackup, p.binPath); err != nil {
				errs = append(errs, fmt.Errorf("restore %s: %w", p.binPath, err))
			}
			changed = true
		}
	} else if _, err := files.Stat(p.binPath); err == nil {
		if err := files.Remove(p.binPath); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", p.binPath, err))
		}
		changed = true
	}

	// containerd needs the old config back if it loaded (or may load) the new one: the new config
	// was written (and perhaps loaded) by this transaction, or it was just put back.
	configWritten := configRestored || e.Phase == PhaseConfigured || e.Phase == PhaseRestarted
	if e.NeedRestart && configWritten && len(errs) == 0 {
		changed = true
		present := tx.Previous != nil && tx.Previous.Phase == PhaseInstalled
		if err := in.Host.Restarter.Restart(ctx); err != nil {
			errs = append(errs, fmt.Errorf("restart containerd with the previous config: %w", err))
		} else if err := in.waitReady(ctx, p.spec.Handler, present); err != nil {
			errs = append(errs, fmt.Errorf("verify containerd with the previous config: %w", err))
		}
	}

	if len(errs) == 0 {
		if tx.Previous != nil {
			p.state.Shims[e.Handler] = tx.Previous
		} else {
			delete(p.state.Shims, e.Handler)
			p.state.forget(p.cfgFile)
		}
		if err := p.state.save(files, in.Profile.StateFile); err != nil {
			errs = append(errs, err)
		} else {
			in.dropBackups(tx)
			if tx.Previous == nil {
				files.Remove(backupDir(in.Profile.StateFile, e.Handler))
			}
		}
	}
	r.RolledBack = changed && len(errs) == 0
	if len(errs) > 0 {
		r.Reason = installerapi.ReasonRollbackFailed
		r.Error = fmt.Sprintf("%s; rollback failed (state kept in %s for the next run): %v", r.Error, in.Profile.StateFile, errors.Join(errs...))
	}
}

// undoConfig puts this handler's part of the configuration back as it was before the transaction and
// leaves everything else in the file as it is now (other Shims' blocks, a person's edits): the block as
// the transaction's backup holds it, or none. It reports whether it changed the file.
func (in *Installer) undoConfig(p *plan, e *Entry) (bool, error) {
	files, tx := in.Host.Files, e.Tx
	cur, exists, err := readOptional(files, p.cfgFile)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", p.cfgFile, err)
	}
	var before []byte
	if tx.ConfigBackup != "" {
		if before, err = files.ReadFile(tx.ConfigBackup); err != nil {
			return false, fmt.Errorf("read backup %s: %w", tx.ConfigBackup, err)
		}
	}
	want, keep := before, tx.ConfigBackup != ""
	if exists && in.Profile.Config.Mode != distro.ModeDropIn { // a drop-in file holds this handler's runtime only
		if want, err = containerdcfg.RestoreRuntime(cur, before, e.Handler, in.patchOptions()); err != nil {
			return false, fmt.Errorf("put runtime %s in %s back as it was: %w", e.Handler, p.cfgFile, err)
		}
		keep = in.keepConfig(p.state, e.Handler, p.cfgFile, want)
	}
	return in.putConfig(p.cfgFile, cur, exists, want, keep, p.perm)
}

// keepConfig decides whether a config file stays once handler's block has left it and out remains: a
// file wasmkube created goes when no other handler's block is in it and nothing but its seed is left.
func (in *Installer) keepConfig(st *State, handler, file string, out []byte) bool {
	return st.shared(handler, file) || !st.created(file) ||
		len(bytes.TrimSpace(out)) > 0 && string(out) != in.Profile.Config.Seed
}

// putConfig makes the config file hold want (keep) or removes it (!keep), given what it holds now,
// and reports whether that changed it.
func (in *Installer) putConfig(file string, cur []byte, exists bool, want []byte, keep bool, perm fs.FileMode) (bool, error) {
	files := in.Host.Files
	switch {
	case !keep && !exists, keep && exists && bytes.Equal(cur, want):
		return false, nil
	case !keep:
		if err := files.Remove(file); err != nil {
			return false, fmt.Errorf("remove %s: %w", file, err)
		}
	default:
		if err := files.WriteFile(file, want, perm); err != nil {
			return false, fmt.Errorf("write %s: %w", file, err)
		}
	}
	return true, nil
}

// removeTemps removes what interrupted runs for handler left: temporary files beside the files an
// operation writes, and the handler's fetch directory.
func (in *Installer) removeTemps(handler, cfgFile, binPath string) error {
	files, backups := in.Host.Files, backupDir(in.Profile.StateFile, handler)
	var errs []error
	for _, f := range []string{cfgFile, in.Profile.StateFile, binPath, path.Join(backups, "config.before"), path.Join(backups, "binary.before")} {
		if err := files.RemoveTemps(f); err != nil {
			errs = append(errs, err)
		}
	}
	if err := files.RemoveAll(in.fetchDir(handler)); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fail(installerapi.ReasonStateFailed, fmt.Errorf("remove what an interrupted run left: %w", err))
	}
	return nil
}
