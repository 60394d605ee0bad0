package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/assistantd/assistantd/agent/sandbox"
	"github.com/assistantd/assistantd/db"
)

// ContainerStore is what code_interpreter needs from the store for
// containers (a response's code_interpreter naming a cntr_… id): the
// container's files, and a record of its activity and of what its code
// writes.
type ContainerStore interface {
	CreateContainer(ctx context.Context, c db.Container, fileIDs []string) (db.Container, error)
	GetContainer(ctx context.Context, id string) (db.Container, error)
	RunContainer(ctx context.Context, runID string) (db.Container, error)
	ResponseInput(ctx context.Context, responseID string) ([]json.RawMessage, error)
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
// container's (container, when it has one), else its thread's.
func kernelKey(run db.Run, container string) string {
	if container != "" {
		return container
	}
	return run.ThreadID
}

// autoContainerName names the containers code_interpreter {"type":
// "auto"} makes.
const autoContainerName = "code_interpreter auto"

// runContainer is the container a run's code runs in: the one its
// code_interpreter names; for a response's {"type": "auto"}, the one the
// run made already, else the latest still running container a
// code_interpreter_call of its context ran in (given the run's files),
// else (when create is set) a new one holding the run's files, as OpenAI
// does. "" is a run of the Assistants API (its thread's kernel), or a
// response whose code has not run yet when create is false.
func (c *CodeInterpreter) runContainer(ctx context.Context, run db.Run, create bool) (string, error) {
	if id := containerOf(run); id != "" {
		return id, nil
	}
	// One at a time: parallel calls of a run make one container.
	c.autoMu.Lock()
	defer c.autoMu.Unlock()
	ct, err := c.store.RunContainer(ctx, run.ID)
	if err == nil {
		return ct.ID, nil
	}
	if !errors.Is(err, db.ErrNotFound) {
		return "", err
	}
	if run.ResponseID == "" {
		return "", nil // a run of the Assistants API: its thread's kernel
	}
	items, err := c.store.ResponseInput(ctx, run.ResponseID)
	if err != nil {
		return "", err
	}
	for i := len(items) - 1; i >= 0; i-- {
		var it struct {
			Type        string `json:"type"`
			ContainerID string `json:"container_id"`
		}
		if json.Unmarshal(items[i], &it) != nil || it.Type != "code_interpreter_call" || it.ContainerID == "" {
			continue
		}
		ct, err := c.store.GetContainer(ctx, it.ContainerID)
		if errors.Is(err, db.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		if ct.Status != "running" {
			continue
		}
		if create {
			if err := c.addRunFiles(ctx, run, ct.ID); err != nil {
				return "", err
			}
		}
		return ct.ID, nil
	}
	if !create {
		return "", nil
	}
	files, err := c.inputFiles(ctx, run)
	if err != nil {
		return "", err
	}
	ids := make([]string, len(files))
	for i, f := range files {
		ids[i] = f.ID
	}
	ct, err = c.store.CreateContainer(ctx, db.Container{Name: autoContainerName, RunID: run.ID, MemoryLimit: "1g",
		ExpiresAfter: db.ContainerExpiresAfter{Minutes: autoContainerMinutes}}, ids)
	if err != nil {
		return "", err
	}
	return ct.ID, nil
}

// autoContainerMinutes is the idle expiry of a container code_interpreter
// {"type": "auto"} makes (OpenAI's default).
const autoContainerMinutes = 20

// addRunFiles puts the files a run gives its code into a container it
// reuses, those not there yet.
func (c *CodeInterpreter) addRunFiles(ctx context.Context, run db.Run, id string) error {
	files, err := c.inputFiles(ctx, run)
	if err != nil || len(files) == 0 {
		return err
	}
	have, err := c.store.AllContainerFiles(ctx, id)
	if err != nil {
		return err
	}
	in := map[string]bool{}
	for _, f := range have {
		in[f.FileID] = true
	}
	for _, f := range files {
		if in[f.ID] {
			continue
		}
		sf, err := c.store.GetFile(ctx, f.ID)
		if errors.Is(err, db.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if _, err := c.store.AddContainerFile(ctx, db.ContainerFile{ContainerID: id, FileID: f.ID, Bytes: sf.Bytes,
			Path: "/mnt/data/" + path.Base(sf.Filename), Source: "user"}); err != nil {
			return err
		}
	}
	return nil
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
		// Placed by the container file's id: a file replaced at its
		// path (a new container file) is placed again.
		fileID := f.FileID
		files = append(files, sandbox.InputFile{ID: f.ID, Name: strings.TrimPrefix(f.Path, "/mnt/data/"),
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

// recordProduced lists a file the code wrote among its container's files
// (none: the run has no container).
func (c *CodeInterpreter) recordProduced(ctx context.Context, container, name string, f db.File) (db.ContainerFile, error) {
	if container == "" {
		return db.ContainerFile{}, nil
	}
	cf, err := c.store.AddContainerFile(ctx, db.ContainerFile{ContainerID: container, FileID: f.ID, Bytes: f.Bytes,
		Path: "/mnt/data/" + path.Clean(name), Source: "assistant", Owned: true})
	if errors.Is(err, db.ErrNotFound) {
		return db.ContainerFile{}, nil // deleted meanwhile
	}
	return cf, err
}

// RemoveFile takes a container's file out of its kernel's /mnt/data at
// once when the sandbox can (the container file was deleted); otherwise
// the next call's exact placement does.
func (c *CodeInterpreter) RemoveFile(container, path string) error {
	if r, ok := c.sb.(sandbox.Remover); ok {
		return r.Remove(container, path)
	}
	return nil
}

// ExpireContainers is the containers' sweep: it marks the containers
// whose time has come expired and stops their kernels, through forget
// (Engine.ForgetEverywhere: the sweep runs on one replica, the kernels
// may live on any), or here alone when forget is nil. Their files stay in
// the store until the container is deleted.
func (c *CodeInterpreter) ExpireContainers(ctx context.Context, expire func(context.Context) ([]string, error), forget func(string)) (int, error) {
	ids, err := expire(ctx)
	var errs []error
	for _, id := range ids {
		if forget != nil {
			forget(id)
			continue
		}
		errs = append(errs, c.Forget(id))
	}
	return len(ids), errors.Join(append(errs, err)...)
}

// citeContainerFiles makes each sandbox link in text to a file of the
// container a container_file_citation over the link (indices in
// characters, as file_path's are). A file the code wrote that is not
// listed yet (written by a call before a restart) is listed first; a link
// to no file stays plain text.
func (c *CodeInterpreter) citeContainerFiles(ctx context.Context, run db.Run, container, text string, links [][]int) ([]db.Annotation, error) {
	all, err := c.store.AllContainerFiles(ctx, container)
	if err != nil {
		return nil, err
	}
	byPath := map[string]db.ContainerFile{}
	for _, f := range all {
		byPath[f.Path] = f
	}
	var anns []db.Annotation
	for _, m := range links {
		link, name, ok := linkName(text, m)
		if !ok {
			continue
		}
		cf, ok := byPath["/mnt/data/"+name]
		if !ok {
			f, err := c.storeProduced(ctx, kernelKey(run, container), name)
			if err != nil {
				continue // no such file: the link stays plain text
			}
			if cf, err = c.recordProduced(ctx, container, name, f); err != nil {
				return nil, err
			}
			if cf.ID == "" {
				continue // the container was deleted meanwhile
			}
			byPath[cf.Path] = cf
		}
		start := utf8.RuneCountInString(text[:m[0]])
		anns = append(anns, db.Annotation{Type: "container_file_citation", Text: link, StartIndex: start,
			EndIndex: start + utf8.RuneCountInString(link), ContainerFileCitation: &db.ContainerFileCitation{
				ContainerID: container, FileID: cf.ID, Filename: path.Base(cf.Path)}})
	}
	return anns, nil
}
