package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/assistantd/assistantd/agent/sandbox"
	"github.com/assistantd/assistantd/db"
	"github.com/assistantd/assistantd/telemetry"
)

// CodeStore is what the code_interpreter tool needs from the store: the
// files a run makes available to its code, and a place for the files the
// code produces.
type CodeStore interface {
	GetAssistant(ctx context.Context, id string) (db.Assistant, error)
	GetThread(ctx context.Context, id string) (db.Thread, error)
	// ThreadAttachmentFiles lists the file ids attached to the thread's
	// messages for the named tool, oldest first.
	ThreadAttachmentFiles(ctx context.Context, threadID, tool string) ([]string, error)
	GetFile(ctx context.Context, id string) (db.File, error)
	OpenFile(ctx context.Context, id string) (db.File, io.ReadSeekCloser, error)
	StageFile(content io.Reader, limit int64) (*db.StagedFile, error)
	CommitFile(ctx context.Context, f db.File, sf *db.StagedFile, expiresAfter int64) (db.File, error)
	ContainerStore // containers.go
	// SandboxFiles and SaveSandboxFiles keep what a thread's code left
	// in /mnt/data (each file saved as a stored file), so another
	// replica's kernel for the thread finds it.
	SandboxFiles(ctx context.Context, threadID string) ([]db.SandboxFile, error)
	SaveSandboxFiles(ctx context.Context, threadID string, fence *db.Fence, written []db.SandboxFile, removed []string) error
	// HomeKernel records this replica's kernel as the one running the
	// thread's code and returns the replica whose kernel did before.
	HomeKernel(ctx context.Context, threadID, me string, idle time.Duration) (string, error)
}

// CodeInterpreter is the code_interpreter tool: the model's Python runs in
// the thread's sandbox kernel; its logs, figures and files come back as the
// step's outputs, the answer's images and file_path annotations.
type CodeInterpreter struct {
	sb    sandbox.Sandbox
	store CodeStore
	// maxFile bounds one produced file kept as a stored file.
	maxFile int64
	// maxOutput bounds the tool message the model reads.
	maxOutput int

	mu sync.Mutex
	// produced maps a thread's /mnt/data paths to the stored files made of
	// them, for the answer's sandbox: links. A path missing here (after a
	// restart) is stored when a link first names it.
	produced map[string]map[string]string
	// autoMu makes one container per run for code_interpreter {"type":
	// "auto"} (containers.go).
	autoMu sync.Mutex
	// replica names this process among replicas sharing a PostgreSQL
	// database (see Share); "" alone.
	replica    string
	kernelIdle time.Duration
}

// Share makes threads' kernels known to the other replicas of the
// database: each call records this replica (named replica, as in runs'
// claims) as the one whose kernel holds the thread's variables for idle
// (the sandbox's idle timeout), so the engine can keep the thread's next
// runs for it (Engine.preferKernel), and a kernel here whose thread ran
// code elsewhere since is replaced by a fresh one.
func (c *CodeInterpreter) Share(replica string, idle time.Duration) {
	c.replica, c.kernelIdle = replica, idle
}

// NewCodeInterpreter returns the tool running code in sb.
func NewCodeInterpreter(sb sandbox.Sandbox, store CodeStore) *CodeInterpreter {
	return &CodeInterpreter{sb: sb, store: store, maxFile: 512 << 20, maxOutput: 32 << 10, produced: map[string]map[string]string{}}
}

// Type implements Builtin.
func (c *CodeInterpreter) Type() string { return "code_interpreter" }

// enableMetrics reports the sandbox's kernels, running and pooled.
func (c *CodeInterpreter) enableMetrics(m *telemetry.Metrics) {
	k, ok := c.sb.(interface{ Kernels() (running, pooled int) })
	if !ok {
		return
	}
	m.Gauge("assistantd_code_kernels_running", "Python kernels bound to a thread (or starting for one).",
		func() float64 { r, _ := k.Kernels(); return float64(r) })
	m.Gauge("assistantd_code_kernels_pooled", "Python kernels started and waiting in the warm pool.",
		func() float64 { _, p := k.Kernels(); return float64(p) })
}

// codeDescription tells the model what the sandbox offers.
const codeDescription = "Runs Python 3 code in a stateful sandbox, like a Jupyter notebook kernel: variables, imports and " +
	"files persist between calls in this conversation. Installed: numpy, pandas, matplotlib, scipy and scikit-learn " +
	"(plus the standard library); there is no internet access and pip installs are not possible. Files the user " +
	"provided are in /mnt/data, and files you write there can be given to the user as links of the form " +
	"sandbox:/mnt/data/<name>. Figures shown with plt.show() (or left open) are displayed to the user. The value of a " +
	"final expression is printed, as in a notebook."

// Offer implements Builtin. A run about to ask the model with this tool
// may need a kernel soon: the sandbox warms up while the model writes.
func (c *CodeInterpreter) Offer(db.Run, db.Tool) db.FunctionDef {
	if w, ok := c.sb.(sandbox.Warmer); ok {
		w.Warm()
	}
	return db.FunctionDef{Name: "code_interpreter", Description: codeDescription,
		Parameters: json.RawMessage(`{"type":"object","properties":{"code":{"type":"string",` +
			`"description":"The Python code to run."}},"required":["code"],"additionalProperties":false}`)}
}

// Stream implements Builtin.
func (c *CodeInterpreter) Stream() ArgStream { return &codeStream{} }

// codeStream decodes the "code" string of arguments that arrive in pieces,
// so the step's input streams as the model writes it. Each Write decodes
// the arguments so far (they are small) and sends what the decoded code
// gained; an escape split across pieces waits for its end.
type codeStream struct {
	raw     strings.Builder
	emitted int // bytes of decoded code already sent
}

func (s *codeStream) Start() any { return map[string]any{"input": "", "outputs": []any{}} }

func (s *codeStream) Write(frag string) any {
	s.raw.WriteString(frag)
	code, _ := partialCode(s.raw.String())
	if len(code) <= s.emitted {
		return nil
	}
	add := code[s.emitted:]
	s.emitted = len(code)
	return map[string]any{"input": add}
}

// partialCode decodes the "code" member of a JSON object that may be cut
// off anywhere: the code decoded so far (never part of an escape or of a
// UTF-8 sequence), and whether its string was complete.
func partialCode(raw string) (string, bool) {
	p := &jsonScan{s: raw}
	p.ws()
	if !p.eat('{') {
		return "", false
	}
	for {
		p.ws()
		if p.done() || p.peek() == '}' {
			return "", false
		}
		key, ok := p.str()
		if !ok {
			return "", false
		}
		p.ws()
		if !p.eat(':') {
			return "", false
		}
		p.ws()
		if key == "code" && !p.done() && p.peek() == '"' {
			return p.strPrefix()
		}
		if !p.skipValue() {
			return "", false
		}
		p.ws()
		if !p.eat(',') {
			return "", false
		}
	}
}

type jsonScan struct {
	s string
	i int
}

func (p *jsonScan) done() bool { return p.i >= len(p.s) }
func (p *jsonScan) peek() byte { return p.s[p.i] }
func (p *jsonScan) ws() {
	for !p.done() && strings.IndexByte(" \t\r\n", p.peek()) >= 0 {
		p.i++
	}
}
func (p *jsonScan) eat(c byte) bool {
	if !p.done() && p.peek() == c {
		p.i++
		return true
	}
	return false
}

// str reads a whole string; ok is false when it is cut off.
func (p *jsonScan) str() (string, bool) {
	s, complete := p.strPrefix()
	return s, complete
}

// strPrefix decodes a string from its opening quote as far as the input
// goes.
func (p *jsonScan) strPrefix() (string, bool) {
	if !p.eat('"') {
		return "", false
	}
	var b strings.Builder
	for !p.done() {
		c := p.peek()
		switch {
		case c == '"':
			p.i++
			return b.String(), true
		case c == '\\':
			r, n := unescape(p.s[p.i:])
			if n == 0 {
				return b.String(), false // cut inside the escape
			}
			b.WriteRune(r)
			p.i += n
		case c < utf8.RuneSelf:
			b.WriteByte(c)
			p.i++
		default:
			r, n := utf8.DecodeRuneInString(p.s[p.i:])
			if r == utf8.RuneError && !utf8.FullRuneInString(p.s[p.i:]) {
				return b.String(), false
			}
			b.WriteRune(r)
			p.i += n
		}
	}
	return b.String(), false
}

// unescape decodes the escape at the start of s: the rune and its length,
// or n == 0 when s ends before the escape does.
func unescape(s string) (rune, int) {
	if len(s) < 2 {
		return 0, 0
	}
	switch s[1] {
	case '"', '\\', '/':
		return rune(s[1]), 2
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'u':
		r1, ok := hex4(s[2:])
		if !ok {
			return 0, 0
		}
		if !utf16.IsSurrogate(r1) {
			return r1, 6
		}
		// A surrogate pair: wait for the second half.
		if len(s) < 12 {
			if len(s) >= 7 && s[6] != '\\' || len(s) >= 8 && s[7] != 'u' {
				return utf8.RuneError, 6
			}
			return 0, 0
		}
		if s[6] == '\\' && s[7] == 'u' {
			if r2, ok := hex4(s[8:]); ok {
				if r := utf16.DecodeRune(r1, r2); r != utf8.RuneError {
					return r, 12
				}
			}
		}
		return utf8.RuneError, 6
	}
	return utf8.RuneError, 2
}

func hex4(s string) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[:4]) {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c-'a') + 10
		case c >= 'A' && c <= 'F':
			r |= rune(c-'A') + 10
		default:
			return utf8.RuneError, true
		}
	}
	return r, true
}

// skipValue passes over one complete JSON value other than the code.
func (p *jsonScan) skipValue() bool {
	if p.done() {
		return false
	}
	switch p.peek() {
	case '"':
		_, ok := p.str()
		return ok
	case '{', '[':
		depth := 0
		for !p.done() {
			switch p.peek() {
			case '"':
				if _, ok := p.str(); !ok {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			p.i++
			if depth == 0 {
				return true
			}
		}
		return false
	default:
		for !p.done() && strings.IndexByte(",} \t\r\n", p.peek()) < 0 {
			p.i++
		}
		return !p.done()
	}
}

// codeArgs reads the code from a call's arguments. Models that write bare
// code instead of JSON are served too.
func codeArgs(raw string) (string, bool) {
	var args struct {
		Code *string `json:"code"`
	}
	if err := json.Unmarshal([]byte(raw), &args); err == nil && args.Code != nil {
		return *args.Code, true
	}
	if t := strings.TrimSpace(raw); t != "" && !strings.HasPrefix(t, "{") {
		return raw, true
	}
	return "", false
}

// imageExts are the written files also shown as images.
var imageExts = map[string]bool{".png": true, ".jpg": true, ".jpeg": true, ".gif": true, ".webp": true}

// Run implements Runner.
func (c *CodeInterpreter) Run(ctx context.Context, call ToolCall) (ToolResult, error) {
	code, ok := codeArgs(call.Arguments)
	if !ok {
		msg := `Error: the arguments must be a JSON object {"code": "<python code>"}.`
		return ToolResult{Output: msg, Details: db.ToolCall{CodeInterpreter: &db.CodeInterpreterCall{Input: "",
			Outputs: []db.CodeOutput{{Type: "logs", Logs: msg}}}},
			Delta: map[string]any{"outputs": []any{map[string]any{"index": 0, "type": "logs", "logs": msg}}}}, nil
	}
	var files []sandbox.InputFile
	container, err := c.runContainer(ctx, call.Run, true)
	if err != nil {
		return ToolResult{}, err
	}
	if container != "" {
		files, err = c.containerFiles(ctx, container)
		if errors.Is(err, db.ErrContainerExpired) || errors.Is(err, db.ErrNotFound) {
			return containerExpired(container), nil
		}
	} else {
		files, err = c.inputFiles(ctx, call.Run)
	}
	if err != nil {
		return ToolResult{}, err
	}
	key := kernelKey(call.Run, container)
	req := sandbox.Request{Code: code, Files: files, CallID: call.ID, Exact: container != ""}
	if container == "" {
		// A thread's files outlive its kernel on any replica: what its
		// code left in /mnt/data is saved after each call and restored
		// where a kernel starts. (A container's files are its own
		// record, placed exactly.)
		req.Saved = func() ([]sandbox.InputFile, error) { return c.savedFiles(ctx, key) }
		if c.replica != "" {
			before, err := c.store.HomeKernel(ctx, key, c.replica, c.kernelIdle)
			if err != nil {
				return ToolResult{}, err
			}
			req.Fresh = before != "" && before != c.replica
		}
	}
	res, err := c.sb.Exec(ctx, key, req)
	if err != nil {
		return ToolResult{}, err
	}

	var outputs []db.CodeOutput
	var attachments []db.ContentPart
	logs := res.Logs
	if res.Error != "" {
		if logs != "" && !strings.HasSuffix(logs, "\n") {
			logs += "\n"
		}
		logs += res.Error
	}
	if logs != "" {
		outputs = append(outputs, db.CodeOutput{Type: "logs", Logs: logs})
	}
	image := func(id string) {
		outputs = append(outputs, db.CodeOutput{Type: "image", Image: &db.CodeImage{FileID: id}})
		attachments = append(attachments, db.ContentPart{Type: "image_file", ImageFile: &db.ImageFile{FileID: id}})
	}
	ctx = context.WithoutCancel(ctx) // the code ran: keep what it made
	for i, png := range res.Images {
		f, err := c.storeFile(ctx, fmt.Sprintf("figure_%s_%d.png", strings.TrimPrefix(call.ID, "call_"), i+1),
			"image/png", bytes.NewReader(png))
		if err != nil {
			return ToolResult{}, err
		}
		image(f.ID)
	}
	var written []string
	var saved []db.SandboxFile
	for _, name := range res.Files {
		f, err := c.storeProduced(ctx, key, name)
		if err != nil {
			continue // removed or replaced since: nothing to keep
		}
		if _, err := c.recordProduced(ctx, container, name, f); err != nil {
			return ToolResult{}, err
		}
		saved = append(saved, db.SandboxFile{Path: name, FileID: f.ID})
		written = append(written, fmt.Sprintf("sandbox:/mnt/data/%s", name))
		if imageExts[strings.ToLower(path.Ext(name))] {
			image(f.ID)
		}
	}
	if container == "" {
		if err := c.save(ctx, key, saved, res.Removed); err != nil {
			return ToolResult{}, err
		}
	}

	model := logs
	if len(model) > c.maxOutput {
		model = model[:c.maxOutput] + "\n[output truncated]"
	}
	if n := len(res.Images); n > 0 {
		model += fmt.Sprintf("\n[%d figure(s) displayed to the user]", n)
	}
	if len(written) > 0 {
		model += "\n[files written: " + strings.Join(written, ", ") + "]"
	}
	if strings.TrimSpace(model) == "" {
		model = "[the code ran without output]"
	}
	delta := make([]any, len(outputs))
	for i, o := range outputs {
		m := asJSONValue(o).(map[string]any)
		m["index"] = i
		delta[i] = m
	}
	if outputs == nil {
		outputs = []db.CodeOutput{}
	}
	return ToolResult{
		Output:      strings.TrimPrefix(model, "\n"),
		Details:     db.ToolCall{CodeInterpreter: &db.CodeInterpreterCall{Input: code, Outputs: outputs, ContainerID: container}},
		Delta:       map[string]any{"outputs": delta},
		Attachments: attachments,
	}, nil
}

// inputFiles lists the files the run's code finds in /mnt/data: the
// assistant's, the thread's (and the run's own) code_interpreter files and
// the thread's message attachments for code_interpreter. Files deleted
// since they were attached are left out.
func (c *CodeInterpreter) inputFiles(ctx context.Context, run db.Run) ([]sandbox.InputFile, error) {
	var ids []string
	add := func(tr *db.ToolResources) {
		if tr != nil && tr.CodeInterpreter != nil {
			ids = append(ids, tr.CodeInterpreter.FileIDs...)
		}
	}
	if a, err := c.store.GetAssistant(ctx, run.AssistantID); err == nil {
		add(a.ToolResources)
	} else if !errors.Is(err, db.ErrNotFound) {
		return nil, err
	}
	th, err := c.store.GetThread(ctx, run.ThreadID)
	if err != nil {
		return nil, err
	}
	add(th.ToolResources)
	add(run.ToolResources)
	att, err := c.store.ThreadAttachmentFiles(ctx, run.ThreadID, "code_interpreter")
	if err != nil {
		return nil, err
	}
	ids = append(ids, att...)

	var files []sandbox.InputFile
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		f, err := c.store.GetFile(ctx, id)
		if errors.Is(err, db.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		files = append(files, sandbox.InputFile{ID: id, Name: path.Base(f.Filename), Open: func() (io.ReadCloser, error) {
			_, r, err := c.store.OpenFile(context.WithoutCancel(ctx), id)
			if err != nil {
				return nil, err
			}
			return r, nil
		}})
	}
	return files, nil
}

// savedFiles lists what the thread's code left in /mnt/data as last
// saved, to place where its kernel starts.
func (c *CodeInterpreter) savedFiles(ctx context.Context, threadID string) ([]sandbox.InputFile, error) {
	all, err := c.store.SandboxFiles(ctx, threadID)
	if err != nil {
		return nil, err
	}
	files := make([]sandbox.InputFile, len(all))
	for i, f := range all {
		id := f.FileID
		files[i] = sandbox.InputFile{ID: id, Name: f.Path, Open: func() (io.ReadCloser, error) {
			_, r, err := c.store.OpenFile(context.WithoutCancel(ctx), id)
			if err != nil {
				return nil, err
			}
			return r, nil
		}}
	}
	return files, nil
}

// save records what a call did to the thread's /mnt/data: the files it
// wrote, now stored files, and those it removed; then tells the sandbox
// which saved versions its directory holds. A thread deleted meanwhile
// has nothing to keep.
func (c *CodeInterpreter) save(ctx context.Context, threadID string, written []db.SandboxFile, removed []string) error {
	var fenced *db.Fence // a call of a run's execution: only while its claim holds the run
	if f, ok := ctx.Value(fenceKey{}).(fence); ok {
		fenced = &db.Fence{RunID: f.runID, Replica: f.replica, Attempt: f.attempt}
	}
	err := c.store.SaveSandboxFiles(ctx, threadID, fenced, written, removed)
	if errors.Is(err, db.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if s, ok := c.sb.(sandbox.Syncer); ok {
		ids := make(map[string]string, len(written))
		for _, f := range written {
			ids[f.Path] = f.FileID
		}
		return s.NoteSaved(threadID, ids, removed)
	}
	return nil
}

// storeProduced stores a file the thread's code wrote and remembers it for
// the answer's links.
func (c *CodeInterpreter) storeProduced(ctx context.Context, threadID, name string) (db.File, error) {
	r, err := c.sb.Open(threadID, name)
	if err != nil {
		return db.File{}, err
	}
	defer r.Close()
	f, err := c.storeFile(ctx, "/mnt/data/"+name, contentType(name), r)
	if err != nil {
		return f, err
	}
	c.mu.Lock()
	if c.produced[threadID] == nil {
		c.produced[threadID] = map[string]string{}
	}
	c.produced[threadID][name] = f.ID
	c.mu.Unlock()
	return f, nil
}

func (c *CodeInterpreter) storeFile(ctx context.Context, name, ctype string, r io.Reader) (db.File, error) {
	sf, err := c.store.StageFile(r, c.maxFile)
	if err != nil {
		return db.File{}, err
	}
	f, err := c.store.CommitFile(ctx, db.File{Filename: name, Purpose: "assistants_output", ContentType: ctype}, sf, 0)
	if err != nil {
		sf.Discard()
	}
	return f, err
}

func contentType(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".png":
		return "image/png"
	case ".jpg", ".jpeg":
		return "image/jpeg"
	case ".gif":
		return "image/gif"
	case ".webp":
		return "image/webp"
	case ".csv":
		return "text/csv"
	case ".json":
		return "application/json"
	case ".txt", ".md", ".py":
		return "text/plain"
	}
	return "application/octet-stream"
}

// sandboxLink matches a sandbox:/mnt/data/<path> link as models write
// them, in Markdown links or bare; the path ends at whitespace, a closing
// bracket or a quote.
var sandboxLink = regexp.MustCompile(`sandbox:/mnt/data/[^\s()\[\]<>"'` + "`" + `]+`)

// Annotate implements Annotator: each sandbox:/mnt/data link to a file the
// thread's code wrote becomes a file_path annotation over the link, with
// indices counted in characters (code points), as the text's are.
//
// In a container (a response's code) each link to one of the container's
// files becomes a container_file_citation naming the container file.
func (c *CodeInterpreter) Annotate(ctx context.Context, run db.Run, text string) ([]db.Annotation, error) {
	links := sandboxLink.FindAllStringIndex(text, -1)
	if len(links) == 0 {
		return nil, nil
	}
	container, err := c.runContainer(ctx, run, false)
	if err != nil {
		return nil, err
	}
	if container != "" {
		return c.citeContainerFiles(ctx, run, container, text, links)
	}
	key := kernelKey(run, "")
	var anns []db.Annotation
	for _, m := range links {
		link, name, ok := linkName(text, m)
		if !ok {
			continue
		}
		c.mu.Lock()
		id, ok := c.produced[key][name]
		c.mu.Unlock()
		if ok {
			if _, err := c.store.GetFile(ctx, id); err != nil {
				ok = false // deleted through the API since
			}
		}
		if !ok {
			f, err := c.storeProduced(ctx, key, name)
			if err != nil {
				continue // no such file: the link stays plain text
			}
			id = f.ID
		}
		start := utf8.RuneCountInString(text[:m[0]])
		anns = append(anns, db.Annotation{Type: "file_path", Text: link, StartIndex: start,
			EndIndex: start + utf8.RuneCountInString(link), FilePath: &db.FilePath{FileID: id}})
	}
	return anns, nil
}

// linkName reads the sandbox link at m in text: the link (without
// trailing punctuation) and the /mnt/data path it names, relative; ok is
// false for a path leaving /mnt/data.
func linkName(text string, m []int) (link, name string, ok bool) {
	link = strings.TrimRight(text[m[0]:m[1]], ".,;:!?")
	name = strings.TrimPrefix(link, "sandbox:/mnt/data/")
	if un, err := url.PathUnescape(name); err == nil {
		name = un
	}
	name = path.Clean(name)
	if name == "." || strings.HasPrefix(name, "../") || name == ".." || strings.HasPrefix(name, "/") {
		return "", "", false
	}
	return link, name, true
}

// Forget drops what the tool keeps for a deleted thread: its kernel and
// its /mnt/data.
func (c *CodeInterpreter) Forget(threadID string) error {
	c.mu.Lock()
	delete(c.produced, threadID)
	c.mu.Unlock()
	return c.sb.Forget(threadID)
}

var _ interface {
	Builtin
	Annotator
} = (*CodeInterpreter)(nil)
