package installer

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
)

// StateVersion is the schema version of the state file.
const StateVersion = 1

// Phase is where an entry's transaction stands.
type Phase string

// Phases of an entry, in the order a transaction passes them.
const (
	// PhasePending: a transaction started; host changes may have begun. Backups are in place.
	PhasePending Phase = "pending"
	// PhaseConfigured: the new configuration is written; a restart is owed.
	PhaseConfigured Phase = "configured"
	// PhaseRestarted: containerd was restarted with the new configuration; verification is owed.
	PhaseRestarted Phase = "restarted"
	// PhaseInstalled: the handler was verified; no transaction is open.
	PhaseInstalled Phase = "installed"
	// PhaseUninstalling: an uninstall started; the entry disappears when it finishes.
	PhaseUninstalling Phase = "uninstalling"
	// PhaseRemoved: the uninstall restarted containerd without our runtime; verification is owed.
	PhaseRemoved Phase = "removed"
)

// State is the content of the state file: what wasmkube installed on this node. Each entry belongs to
// one Shim and names what that Shim owns here: its config block (found by handler), its binary and its
// backups (backupDir). Nothing in an entry is shared with another entry.
type State struct {
	Version int               `json:"version"`
	Shims   map[string]*Entry `json:"shims"` // by handler
	// Created lists the config files wasmkube created (a template from its seed, a drop-in file). When
	// the last wasmkube block leaves such a file and nothing else is left in it, the file goes.
	Created []string `json:"createdConfigs,omitempty"`
}

// Entry is one installed (or being installed) runtime handler of one Shim.
type Entry struct {
	Shim        string `json:"shim"`
	Handler     string `json:"handler"`
	RuntimeType string `json:"runtimeType"`
	SpecHash    string `json:"specHash,omitempty"`
	Phase       Phase  `json:"phase"`

	// BinaryPath is the host path of the shim binary; BinarySHA256 its hash once verified.
	BinaryPath   string `json:"binaryPath"`
	BinarySHA256 string `json:"binarySHA256,omitempty"`
	// BinarySize and BinaryModNano let an idempotent re-run skip hashing an unchanged binary.
	BinarySize    int64  `json:"binarySize,omitempty"`
	BinaryModNano int64  `json:"binaryModNano,omitempty"`
	SourceDigest  string `json:"sourceDigest,omitempty"`
	Platform      string `json:"platform,omitempty"`

	// ConfigPath is the host path of the file holding our runtime (the drop-in file in drop-in mode).
	ConfigPath string `json:"configPath"`

	// NeedRestart records, before the configuration is written, that containerd must restart.
	NeedRestart bool `json:"needRestart,omitempty"`
	// Tx holds what the open transaction's rollback restores; nil when no transaction is open.
	Tx *Tx `json:"tx,omitempty"`
}

// Tx is the rollback information of an open transaction.
type Tx struct {
	// ConfigBackup is the backup of the configuration file before the transaction ("" = it did not exist).
	ConfigBackup string `json:"configBackup,omitempty"`
	// BinaryBackup is the backup of the binary before the transaction ("" = it did not exist).
	BinaryBackup string `json:"binaryBackup,omitempty"`
	// Previous is the entry as it was before the transaction; nil for a first installation.
	Previous *Entry `json:"previous,omitempty"`
}

// ErrStateCorrupt means the state file exists but cannot be read; it is left as it is.
var ErrStateCorrupt = errors.New("state file unreadable")

// loadState reads the state file; a missing file is an empty state.
func loadState(files Files, file string) (*State, error) {
	data, exists, err := readOptional(files, file)
	if err != nil {
		return nil, fmt.Errorf("read state file %s: %w", file, err)
	}
	st := &State{Version: StateVersion, Shims: map[string]*Entry{}}
	if !exists {
		return st, nil
	}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("%w: %s: %v (move it aside to start over; wasmkube then forgets what it installed)", ErrStateCorrupt, file, err)
	}
	if st.Version != StateVersion {
		return nil, fmt.Errorf("%w: %s has version %d, this installer knows %d", ErrStateCorrupt, file, st.Version, StateVersion)
	}
	if st.Shims == nil {
		st.Shims = map[string]*Entry{}
	}
	// Installers from before several Shims could share a node recorded per entry whether wasmkube
	// created the config file.
	var legacy struct {
		Shims map[string]struct {
			ConfigPath    string `json:"configPath"`
			ConfigCreated bool   `json:"configCreated"`
		} `json:"shims"`
	}
	if json.Unmarshal(data, &legacy) == nil {
		for _, e := range legacy.Shims {
			if e.ConfigCreated {
				st.setCreated(e.ConfigPath, true)
			}
		}
	}
	return st, nil
}

// created reports whether wasmkube created the config file.
func (st *State) created(file string) bool { return slices.Contains(st.Created, file) }

// setCreated records whether wasmkube created the config file.
func (st *State) setCreated(file string, created bool) {
	st.Created = slices.DeleteFunc(st.Created, func(f string) bool { return f == file })
	if created {
		st.Created = append(st.Created, file)
		slices.Sort(st.Created)
	}
}

// forget drops what the state knows about a config file once no entry's block is in it any more (the
// file was removed, or what is left in it is no longer wasmkube's).
func (st *State) forget(file string) {
	for _, e := range st.Shims {
		if e.ConfigPath == file {
			return
		}
	}
	st.setCreated(file, false)
}

// shared reports whether another handler's block lives in the config file too.
func (st *State) shared(handler, configFile string) bool {
	for h, e := range st.Shims {
		if h != handler && e.ConfigPath == configFile {
			return true
		}
	}
	return false
}

// binaryUser returns another handler's entry that names the binary path (now or before its open
// transaction), or nil. Installers from before several Shims could share a node named binaries by
// runtime type alone, so two Shims with one runtime type shared a binary.
func (st *State) binaryUser(handler, binPath string) *Entry {
	for h, e := range st.Shims {
		if h == handler {
			continue
		}
		if e.BinaryPath == binPath || e.Tx != nil && e.Tx.Previous != nil && e.Tx.Previous.BinaryPath == binPath {
			return e
		}
	}
	return nil
}

// save writes the state file atomically; an empty state removes the file.
func (st *State) save(files Files, file string) error {
	if len(st.Shims) == 0 {
		if err := files.Remove(file); err != nil {
			return fmt.Errorf("remove state file %s: %w", file, err)
		}
		return nil
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	if err := files.WriteFile(file, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write state file %s: %w", file, err)
	}
	return nil
}

// backupDir is where backups of a handler live: beside the state file.
func backupDir(stateFile, handler string) string {
	return path.Join(path.Dir(stateFile), "backup", handler)
}

// clone returns a copy of the entry without its transaction.
func (e *Entry) clone() *Entry {
	c := *e
	c.Tx = nil
	return &c
}
