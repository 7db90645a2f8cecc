package installer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	installerapi "github.com/wasmkube/wasmkube/api/installer/v1alpha1"
)

// ErrNodeBusy means another installer operation held the node lock until this operation's deadline.
var ErrNodeBusy = errors.New("node busy")

// LockFile returns the host path of the node lock: beside the state file.
func LockFile(stateFile string) string { return path.Join(path.Dir(stateFile), "node.lock") }

// Poll interval bounds while waiting for the node lock. flock cannot wait with a deadline, so a waiter
// retries without blocking; an operation that holds the lock takes a second or more, so a waiter loses
// at most a few percent of its wait to the poll.
const (
	lockPollMin = 2 * time.Millisecond
	lockPollMax = 100 * time.Millisecond
)

// nodeLock is an exclusive flock(2) on the node lock file. The kernel releases it when the holding
// process exits, however it exits (a SIGKILLed installer leaves no stale lock), and the file itself is
// never removed (removing it would let two processes lock two different files).
type nodeLock struct{ f *os.File }

// lockNode takes the node lock, waiting at most until ctx is done; then it fails with ErrNodeBusy
// (reason NodeBusy) naming the holder. holder describes this operation to a waiter; it is written into
// the lock file while held.
func (in *Installer) lockNode(ctx context.Context, holder string) (*nodeLock, error) {
	file := LockFile(in.Profile.StateFile)
	files := in.Host.Files
	if err := files.MkdirAll(path.Dir(file), 0o755); err != nil {
		return nil, fail(installerapi.ReasonStateFailed, fmt.Errorf("create the directory of the node lock %s: %w", file, err))
	}
	full, err := files.HostPath(file)
	if err != nil {
		return nil, fail(installerapi.ReasonStateFailed, fmt.Errorf("open the node lock %s: %w", file, err))
	}
	f, err := os.OpenFile(full, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fail(installerapi.ReasonStateFailed, fmt.Errorf("open the node lock %s: %w", file, err))
	}
	start := in.now()
	for wait := lockPollMin; ; wait = min(2*wait, lockPollMax) {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fail(installerapi.ReasonStateFailed, fmt.Errorf("lock %s: %w", file, err))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			by, _ := os.ReadFile(full)
			f.Close()
			return nil, fail(installerapi.ReasonNodeBusy, fmt.Errorf("%w: another node-installer operation (%s) held the node lock %s for the %s this operation could wait (its deadline); nothing was changed, run it again when that one has finished",
				ErrNodeBusy, strings.TrimSpace(string(by)), file, in.now().Sub(start).Round(time.Millisecond)))
		case <-t.C:
		}
	}
	// Who holds the lock, for a waiter's message (best effort: the lock works without it). The record
	// has a fixed size, so it is overwritten in place: truncating the file first made ext4 flush it to
	// disk on close (its replace-by-truncate heuristic), which cost a quarter of a millisecond.
	f.WriteAt(holderRecord(holder), 0)
	return &nodeLock{f: f}, nil
}

// holderRecordSize is the size of the record naming the lock's holder in the lock file.
const holderRecordSize = 256

// holderRecord describes this process as the lock's holder, padded to holderRecordSize.
func holderRecord(holder string) []byte {
	rec := fmt.Sprintf("%s, pid %d, since %s", holder, os.Getpid(), time.Now().UTC().Format(time.RFC3339))
	if len(rec) > holderRecordSize-1 {
		rec = rec[:holderRecordSize-1]
	}
	return fmt.Appendf(nil, "%-*s\n", holderRecordSize-1, rec)
}

// unlock releases the lock (closing the file releases the flock).
func (l *nodeLock) unlock() { l.f.Close() }
