package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/assistantd/assistantd/agent/sandbox"
	"github.com/assistantd/assistantd/db"
)

// ContainerStore is what code_interpreter needs from the store for
// containers (a response's code_interpreter naming a cntr_… id): the
// container's files, and a record of its activity and of what its code
// writes.
type ContainerStore interface {
	TouchContainer(ctx context.Context, id string) error
	AllContainerFiles(ctx context.Context, containerID string) ([]db.ContainerFile, error)
	AddContainerFile(ctx context.Context, f db.ContainerFile) (db.ContainerFile, error)
}

// containerOf is the container a run's code runs in, or "".
func containerOf(run db.Run) string {
	if r := run.ToolResources; r != nil && r.CodeInterpreter != nil {
		return r.CodeInterpreter.ContainerID
	}
	return ""
}

// kernelKey names the sandbox session a run's code runs in: its
// container's, else its thread's.
func kernelKey(run db.Run) string {
	if id := containerOf(run); id != "" {
		return id
	}
	return run.ThreadID
}

// containerFiles marks the container active and lists the files its code
// finds in /mnt/data. An expired container is ErrContainerExpired.
func (c *CodeInterpreter) containerFiles(ctx context.Context, id string) ([]sandbox.InputFile, error) {
	if err := c.store.TouchContainer(ctx, id); err != nil {
		return nil, err
	}
	all, err := c.store.AllContainerFiles(ctx, id)
	if err != nil {
		return nil, err
	}
	var files []sandbox.InputFile
	for _, f := range all {
		fileID := f.FileID
		files = append(files, sandbox.InputFile{ID: fileID, Name: strings.TrimPrefix(f.Path, "/mnt/data/"),
			Open: func() (io.ReadCloser, error) {
				_, r, err := c.store.OpenFile(context.WithoutCancel(ctx), fileID)
				if err != nil {
					return nil, err
				}
				return r, nil
			}})
	}
	return files, nil
}

// containerExpired is the tool output for code sent to an expired
// container.
func containerExpired(id string) ToolResult {
	msg := fmt.Sprintf("Error: container %s has expired; its kernel is stopped. Create a new container to run code.", id)
	return ToolResult{Output: msg, Details: db.ToolCall{CodeInterpreter: &db.CodeInterpreterCall{Input: "",
		Outputs: []db.CodeOutput{{Type: "logs", Logs: msg}}, ContainerID: id}},
		Delta: map[string]any{"outputs": []any{map[string]any{"index": 0, "type": "logs", "logs": msg}}}}
}

// recordProduced lists a file the code wrote among its container's files.
func (c *CodeInterpreter) recordProduced(ctx context.Context, run db.Run, name string, f db.File) error {
	id := containerOf(run)
	if id == "" {
		return nil
	}
	_, err := c.store.AddContainerFile(ctx, db.ContainerFile{ContainerID: id, FileID: f.ID, Bytes: f.Bytes,
		Path: "/mnt/data/" + path.Clean(name), Source: "assistant", Owned: true})
	if errors.Is(err, db.ErrNotFound) {
		return nil // deleted meanwhile
	}
	return err
}

// ExpireContainers is the containers' sweep: it marks the containers
// whose time has come expired and stops their kernels. Their files stay in
// the store until the container is deleted.
func (c *CodeInterpreter) ExpireContainers(ctx context.Context, expire func(context.Context) ([]string, error)) (int, error) {
	ids, err := expire(ctx)
	var errs []error
	for _, id := range ids {
		errs = append(errs, c.Forget(id))
	}
	return len(ids), errors.Join(append(errs, err)...)
}
