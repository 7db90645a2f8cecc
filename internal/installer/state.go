package installer

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
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

// State is the content of the state file: what wasmkube installed on this node.
type State struct {
	Version int               `json:"version"`
	Shims   map[string]*Entry `json:"shims"` // by handler
}

// Entry is one installed (or being installed) runtime handler.
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
	// ConfigSHA256 is the hash of that file as the last finished transaction left it.
	ConfigSHA256 string `json:"configSHA256,omitempty"`
	// Original is the backup of the configuration before wasmkube first added this handler ("" when
	// the file did not exist): what Uninstall restores when nobody else edited the file since.
	Original string `json:"original,omitempty"`
	// ConfigCreated says the configuration file did not exist before wasmkube first wrote it.
	ConfigCreated bool `json:"configCreated,omitempty"`

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
	return st, nil
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
