// Package sandbox runs the code_interpreter tool's Python: one stateful
// kernel per thread, like a notebook's, isolated from the server and from
// other threads. The Sandbox interface is what the tool needs, so a remote
// sandbox service can replace the local bubblewrap backend (Local).
package sandbox

import (
	"context"
	"errors"
	"io"
)

// Sandbox runs code for threads. Each thread has its own kernel (variables
// and imports persist between its calls) and its own files, visible to its
// code as /mnt/data.
type Sandbox interface {
	// Exec places req.Files in the thread's /mnt/data (each once: a file
	// already placed is not overwritten, so the code's edits survive), runs
	// req.Code in the thread's kernel and reports what it did. Anything
	// that goes wrong inside the sandbox (an exception, a limit hit, a
	// crash) is Result.Error, for the model to read; error is only for
	// ctx ending or the server failing to place files.
	Exec(ctx context.Context, threadID string, req Request) (Result, error)
	// Open reads a file of the thread's /mnt/data by its path there
	// (relative, as Result.Files names it).
	Open(threadID, name string) (io.ReadCloser, error)
	// Forget stops the thread's kernel and removes its files (the thread
	// was deleted).
	Forget(threadID string) error
	// Close stops every kernel; files are kept.
	Close() error
}

// Warmer is a Sandbox that can prepare kernels ahead of calls (the local
// backend's warm pool).
type Warmer interface {
	Warm()
}

// Remover is a Sandbox that can take a file out of a session's /mnt/data
// between calls (a container's file deleted through the API). A session
// running code keeps it until its next Exec with Exact.
type Remover interface {
	Remove(threadID, name string) error
}

// Request is one call: code and the files it should find.
type Request struct {
	Code  string
	Files []InputFile
	// CallID is the tool call's id, stable across a restart that runs
	// the call again; the code reads it as the environment variable
	// CODE_INTERPRETER_CALL_ID, so code whose effects must not happen
	// twice can check.
	CallID string
	// Exact says Files are all the files the session is given (a
	// container's): each is placed at exactly its Name, replacing what is
	// there, and a file placed by an earlier call that is no longer among
	// them is removed from /mnt/data.
	Exact bool
	// Saved, when set, lists the files the thread's code left in
	// /mnt/data as last saved (by this server or another, from
	// Result.Files and Result.Removed of earlier calls); it is called
	// once the thread's kernel is free, so it sees every earlier call's
	// save. The thread's /mnt/data is brought to it: each file is
	// written at its Name unless the directory holds that saved version
	// already (by ID, see Syncer), and a file written from an earlier
	// saved state that it no longer lists (the code removed it on another
	// server) is removed. So a kernel starting on a server that has not
	// run the thread's code before finds the files it wrote elsewhere.
	Saved func() ([]InputFile, error)
	// Fresh stops the thread's kernel, if it has one, before the call:
	// the thread's code ran on another server since its last call here,
	// so its variables are stale.
	Fresh bool
}

// Syncer is a Sandbox that remembers which saved version of each file
// its /mnt/data of a thread holds (Request.Saved): NoteSaved records the
// versions the files a call wrote were saved as, and the paths it
// removed, so the next Sync writes none of them again.
type Syncer interface {
	NoteSaved(threadID string, saved map[string]string, removed []string) error
}

// InputFile is a stored file to place in /mnt/data under Name.
type InputFile struct {
	// ID identifies the file: the same ID is placed only once per thread.
	ID   string
	Name string
	Open func() (io.ReadCloser, error)
}

// Result is what one call did.
type Result struct {
	// Logs is the call's stdout and stderr, in order, cut at the output
	// limit (with a note saying how much was left out).
	Logs string
	// Error is the traceback of an exception, or why the sandbox stopped
	// the call (a limit, a crash, no bubblewrap). Empty on success.
	Error string
	// Restarted says the kernel died or was stopped: the thread's next
	// call starts a fresh one (variables lost, files kept).
	Restarted bool
	// Images are the figures the code showed or left open, as PNG.
	Images [][]byte
	// Files are the files in /mnt/data the call created or changed,
	// paths relative to /mnt/data.
	Files []string
	// Removed are the files in /mnt/data the call removed (none when
	// /mnt/data held too many entries to compare).
	Removed []string
}

// ErrUnavailable is the reason given when the local backend cannot
// isolate code (no bubblewrap) and unsafe execution was not allowed.
var ErrUnavailable = errors.New("code execution is disabled on this server: bubblewrap (bwrap) is not installed, " +
	"so code cannot be isolated; install bubblewrap, or start the server with --code-unsafe to run code without isolation")
