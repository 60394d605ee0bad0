// Package validate holds the rules of the Assistants API's request
// objects — assistants, tools and their schemas, messages, threads, runs,
// tool outputs, webhooks — in one place that both the /v1 handlers and the
// web app call. It turns a request into the record to store and reports
// every problem with a structured Path, so the API can answer with
// OpenAI's envelope (the first problem, its path as "param") and a form can
// put each problem beside the field it belongs to without parsing strings.
package validate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/assistantd/assistantd/db"
)

// Path names a field of a request as a list of object keys (string) and
// array indices (int): Path{"tools", 2, "function", "name"}.
type Path []any

// P builds a Path.
func P(elems ...any) Path { return Path(elems) }

// Key returns p extended by an object key, never sharing p's array.
func (p Path) Key(k string) Path {
	q := make(Path, len(p), len(p)+1)
	copy(q, p)
	return append(q, k)
}

// Index returns p extended by an array index.
func (p Path) Index(i int) Path {
	q := make(Path, len(p), len(p)+1)
	copy(q, p)
	return append(q, i)
}

// String spells p as OpenAI's "param": tools[2].function.name.
func (p Path) String() string {
	var b strings.Builder
	for _, e := range p {
		switch e := e.(type) {
		case int:
			b.WriteString("[" + strconv.Itoa(e) + "]")
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, e)
		}
	}
	return b.String()
}

// At returns p's i-th key ("" when it is missing or an index).
func (p Path) At(i int) string {
	if i < 0 || i >= len(p) {
		return ""
	}
	s, _ := p[i].(string)
	return s
}

// IndexAt returns p's i-th element as an array index.
func (p Path) IndexAt(i int) (int, bool) {
	if i < 0 || i >= len(p) {
		return 0, false
	}
	n, ok := p[i].(int)
	return n, ok
}

// Error is one problem with a request.
type Error struct {
	Path Path
	// Code is OpenAI's error code: invalid_value, missing_required_parameter …
	Code string
	// Message is the API's wording, naming the parameter by its path.
	Message string
	// Hint, when set, says the same for a person at the field itself,
	// without the path ("Give the function a name.").
	Hint string
}

func (e *Error) Error() string { return e.Message }

// Text is what a form shows beside the field.
func (e *Error) Text() string {
	if e.Hint != "" {
		return e.Hint
	}
	return e.Message
}

// Errors is every problem found, in the order checked. The API answers with
// the first, as OpenAI did; a form shows each beside its field.
type Errors []*Error

func (es Errors) Error() string {
	if len(es) == 0 {
		return "no errors"
	}
	if len(es) == 1 {
		return es[0].Message
	}
	return fmt.Sprintf("%s (and %d more)", es[0].Message, len(es)-1)
}

// Err returns es as an error, nil when empty.
func (es Errors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// List returns the validation problems err holds (an *Error or Errors),
// and false for any other error (a failed lookup, say).
func List(err error) (Errors, bool) {
	var es Errors
	if errors.As(err, &es) {
		return es, len(es) > 0
	}
	var e *Error
	if errors.As(err, &e) {
		return Errors{e}, true
	}
	return nil, false
}

// New returns a problem at p with the API's message.
func New(p Path, code, format string, args ...any) *Error {
	return &Error{Path: p, Code: code, Message: fmt.Sprintf(format, args...)}
}

// withHint sets e's hint (for a form) and returns e.
func (e *Error) withHint(format string, args ...any) *Error {
	e.Hint = fmt.Sprintf(format, args...)
	return e
}

// Missing is OpenAI's missing_required_parameter.
func Missing(p Path) *Error {
	return New(p, "missing_required_parameter", "Missing required parameter: '%s'.", p)
}

// Files is what validation reads from the store: which of some file ids
// name no file.
type Files interface {
	MissingFiles(ctx context.Context, ids []string) ([]string, error)
}

// checker collects problems; fail keeps the first error that is not a
// problem with the request (a failed lookup), which ends the check.
type checker struct {
	ctx   context.Context
	files Files
	errs  Errors
	fail  error
}

// add records err: a problem (or several) joins the list, anything else is
// a failure. It reports whether err was non-nil.
func (c *checker) add(err error) bool {
	if err == nil {
		return false
	}
	if es, ok := List(err); ok {
		c.errs = append(c.errs, es...)
	} else if c.fail == nil {
		c.fail = err
	}
	return true
}

// result is the checker's outcome as an error.
func (c *checker) result() error {
	if c.fail != nil {
		return c.fail
	}
	return c.errs.Err()
}

// Limits of the Assistants API (shared/spec/assistants-api.md §1.2, §5).
const (
	MaxMetadataPairs    = 16
	MaxMetadataKey      = 64
	MaxMetadataValue    = 512
	MaxName             = 256
	MaxDescription      = 512
	MaxInstructions     = 256000
	MaxAssistantTools   = 128
	MaxRunTools         = 20
	MaxCodeFiles        = 20
	MaxVectorStores     = 1
	MaxMessageContent   = 256000
	MaxThreadMessages   = 32
	MaxAttachments      = 10
	MaxFileSearchResult = 50
	MaxToolOutput       = 512 * 1024
	MinTokenLimit       = 256
)

// Len rejects a string longer than max characters.
func Len(p Path, s *string, max int) error {
	if s == nil {
		return nil
	}
	if n := utf8.RuneCountInString(*s); n > max {
		return New(p, "string_above_max_length",
			"Invalid '%s': string too long. Expected a string with maximum length %d, but got a string with length %d instead.", p, max, n).
			withHint("At most %d characters; this has %d.", max, n)
	}
	return nil
}

// Range rejects a number outside [lo, hi].
func Range(p Path, v *float64, lo, hi float64) error {
	if v == nil {
		return nil
	}
	if math.IsNaN(*v) || math.IsInf(*v, 0) {
		// JSON cannot carry these, but a form's number can, and NaN
		// passes both comparisons below.
		return New(p, "invalid_value", "Invalid '%s': expected a number.", p).withHint("Enter a number.")
	}
	if *v < lo {
		return New(p, "decimal_below_min_value",
			"Invalid '%s': decimal below minimum value. Expected a value >= %g, but got %g instead.", p, lo, *v).
			withHint("Enter a value from %g to %g (the minimum value is %g).", lo, hi, lo)
	}
	if *v > hi {
		return New(p, "decimal_above_max_value",
			"Invalid '%s': decimal above maximum value. Expected a value <= %g, but got %g instead.", p, hi, *v).
			withHint("Enter a value from %g to %g (the maximum value is %g).", lo, hi, hi)
	}
	return nil
}

// ArrayLen rejects an array longer than max.
func ArrayLen(p Path, n, max int) error {
	if n > max {
		return New(p, "array_above_max_length",
			"Invalid '%s': array too long. Expected an array with maximum length %d, but got an array with length %d instead.", p, max, n)
	}
	return nil
}

// Metadata enforces the 16 pairs / 64-character keys / 512-character
// values limits.
func Metadata(p Path, m db.Metadata) error {
	if len(m) > MaxMetadataPairs {
		return New(p, "object_above_max_properties",
			"Invalid '%s': too many properties. Expected an object with at most %d properties, but got an object with %d properties instead.",
			p, MaxMetadataPairs, len(m)).withHint("At most %d keys; this has %d.", MaxMetadataPairs, len(m))
	}
	for k, v := range m {
		if n := utf8.RuneCountInString(k); n > MaxMetadataKey {
			return New(p, "string_above_max_length",
				"Invalid '%s': metadata key '%s…' is too long. Expected a key with maximum length %d, but got a key with length %d instead.",
				p, truncate(k, 16), MaxMetadataKey, n).withHint("The key “%s…” is too long: at most %d characters.", truncate(k, 16), MaxMetadataKey)
		}
		if n := utf8.RuneCountInString(v); n > MaxMetadataValue {
			kp := p.Key(k)
			return New(kp, "string_above_max_length",
				"Invalid '%s': string too long. Expected a string with maximum length %d, but got a string with length %d instead.",
				kp, MaxMetadataValue, n).withHint("The value of “%s” is too long: at most %d characters.", truncate(k, 16), MaxMetadataValue)
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}

// ID rejects an id that lacks its object's prefix, as OpenAI did:
// "Invalid 'thread_id': 'x'. Expected an ID that begins with 'thread'."
func ID(p Path, id, prefix string) error {
	if !strings.HasPrefix(id, prefix) || len(id) == len(prefix) {
		return New(p, "invalid_value", "Invalid '%s': '%s'. Expected an ID that begins with '%s'.",
			p, id, strings.TrimRight(prefix, "_-"))
	}
	return nil
}

// FileIDs reports ids that are malformed or name no file.
func FileIDs(ctx context.Context, files Files, p Path, ids []string) error {
	var es Errors
	for i, id := range ids {
		if err := ID(p.Index(i), id, "file-"); err != nil {
			es = append(es, err.(*Error))
		}
	}
	if len(es) > 0 {
		return es
	}
	missing, err := files.MissingFiles(ctx, ids)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return New(p, "invalid_value", "Invalid '%s': no file found with id '%s'.", p, missing[0]).
			withHint("No file has the id %s.", missing[0])
	}
	return nil
}

// FileID is FileIDs for one id that p names by itself (an image_file or
// attachment file_id, not an element of a list).
func FileID(ctx context.Context, files Files, p Path, id string) error {
	if err := ID(p, id, "file-"); err != nil {
		return err
	}
	return FileIDs(ctx, files, p, []string{id})
}
