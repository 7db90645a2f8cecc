//go:build linux

package wazerofs

import (
	"fmt"
	"runtime"
	"slices"

	"golang.org/x/sys/unix"
)

// Creds are the filesystem credentials of a container's process (OCI process.user): file
// operations run with them, so the kernel checks the container user's permissions and new files
// get its owner and group, or the group of a setgid directory.
type Creds struct {
	UID, GID uint32
	Groups   []uint32 // supplementary groups (fsGroup and supplementalGroups among them)
}

// NewCreds returns the credentials of a container process, or nil when they are the shim's own
// (root: user and group 0, whose supplementary groups cannot change a root user's permission checks).
func NewCreds(uid, gid uint32, groups []uint32) *Creds {
	if uid == 0 && gid == 0 {
		return nil
	}
	return &Creds{UID: uid, GID: gid, Groups: slices.Clone(groups)}
}

// do runs fn on a thread that carries c: its fsuid, fsgid and supplementary groups are switched
// for the call (all three are per-thread in Linux; the thread is locked to this goroutine meanwhile,
// and the Go runtime never clones a locked thread). A nil c runs fn as it is.
func (c *Creds) do(fn func() error) error {
	if c == nil {
		return fn()
	}
	runtime.LockOSThread()
	saved, err := current()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	if err = c.enter(); err == nil {
		err = fn()
	}
	if rerr := saved.enter(); rerr != nil {
		// The thread keeps the container's credentials: it stays locked to this goroutine, so
		// nothing else runs on it, and the runtime ends it when the goroutine exits.
		panic(fmt.Sprintf("wazerofs: restore the shim's filesystem credentials: %v", rerr))
	}
	runtime.UnlockOSThread()
	return err
}

// current returns the calling thread's filesystem credentials.
func current() (*Creds, error) {
	uid, _ := unix.SetfsuidRetUid(-1)
	gid, _ := unix.SetfsgidRetGid(-1)
	groups, err := unix.Getgroups()
	if err != nil {
		return nil, fmt.Errorf("read the supplementary groups: %w", err)
	}
	c := &Creds{UID: uint32(uid), GID: uint32(gid), Groups: make([]uint32, len(groups))}
	for i, g := range groups {
		c.Groups[i] = uint32(g)
	}
	return c, nil
}

// enter switches the calling thread to c.
func (c *Creds) enter() error {
	groups := make([]int, len(c.Groups))
	for i, g := range c.Groups {
		groups[i] = int(g)
	}
	if err := unix.Setgroups(groups); err != nil { // the raw system call: this thread only
		return fmt.Errorf("set the supplementary groups %v: %w", c.Groups, err)
	}
	if err := setfsid(unix.SetfsgidRetGid, int(c.GID)); err != nil {
		return fmt.Errorf("set fsgid %d: %w", c.GID, err)
	}
	if err := setfsid(unix.SetfsuidRetUid, int(c.UID)); err != nil {
		return fmt.Errorf("set fsuid %d: %w", c.UID, err)
	}
	return nil
}

// setfsid sets an fsuid or fsgid and checks that it took: the system calls report no errors, only
// the previous value (asking with -1 changes nothing and returns the current one).
func setfsid(set func(int) (int, error), id int) error {
	if _, err := set(id); err != nil {
		return err
	}
	if cur, _ := set(-1); cur != id {
		return unix.EPERM
	}
	return nil
}
