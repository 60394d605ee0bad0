package retrieval

import (
	"cmp"
	"encoding/json"
	"fmt"

	"github.com/assistantd/assistantd/db"
)

// Filter is a search filter on file attributes: a comparison (eq, ne, gt,
// gte, lt, lte, in, nin on Key) or a compound (and, or over Filters).
type Filter struct {
	Type    string   `json:"type"`
	Key     string   `json:"key,omitempty"`
	Value   any      `json:"value,omitempty"`
	Filters []Filter `json:"filters,omitempty"`
}

// UnmarshalJSON decodes strictly: unknown fields are errors.
func (f *Filter) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("a filter must be an object")
	}
	type plain Filter
	var p plain
	for k := range raw {
		switch k {
		case "type", "key", "value", "filters":
		default:
			return fmt.Errorf("unknown filter field '%s'", k)
		}
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*f = Filter(p)
	return nil
}

// Check validates a decoded filter; the error says what is wrong.
func (f Filter) Check() error {
	switch f.Type {
	case "and", "or":
		if len(f.Filters) == 0 {
			return fmt.Errorf("a compound filter needs 'filters'")
		}
		for _, sub := range f.Filters {
			if err := sub.Check(); err != nil {
				return err
			}
		}
		return nil
	case "eq", "ne", "gt", "gte", "lt", "lte", "in", "nin":
		if f.Key == "" {
			return fmt.Errorf("a comparison filter needs 'key'")
		}
		switch v := f.Value.(type) {
		case string, float64, bool:
			if f.Type == "in" || f.Type == "nin" {
				return fmt.Errorf("filter '%s' needs an array value", f.Type)
			}
		case []any:
			if f.Type != "in" && f.Type != "nin" {
				return fmt.Errorf("filter '%s' needs a string, number or boolean value", f.Type)
			}
			for _, e := range v {
				switch e.(type) {
				case string, float64:
				default:
					return fmt.Errorf("filter '%s' values must be strings or numbers", f.Type)
				}
			}
		default:
			return fmt.Errorf("a comparison filter needs a string, number, boolean or array 'value'")
		}
		return nil
	}
	return fmt.Errorf("unknown filter type '%s'", f.Type)
}

// Match reports whether attributes satisfy the filter. A comparison on a
// missing key, or between different kinds, is false (ne and nin: true).
func (f Filter) Match(attrs db.Attributes) bool {
	switch f.Type {
	case "and":
		for _, sub := range f.Filters {
			if !sub.Match(attrs) {
				return false
			}
		}
		return true
	case "or":
		for _, sub := range f.Filters {
			if sub.Match(attrs) {
				return true
			}
		}
		return false
	}
	got, ok := attrs[f.Key]
	switch f.Type {
	case "eq":
		return ok && equal(got, f.Value)
	case "ne":
		return !ok || !equal(got, f.Value)
	case "in", "nin":
		in := false
		if list, isList := f.Value.([]any); ok && isList {
			for _, e := range list {
				if equal(got, e) {
					in = true
				}
			}
		}
		return in == (f.Type == "in")
	}
	c, comparable := compare(got, f.Value)
	if !ok || !comparable {
		return false
	}
	switch f.Type {
	case "gt":
		return c > 0
	case "gte":
		return c >= 0
	case "lt":
		return c < 0
	default: // lte
		return c <= 0
	}
}

func equal(a, b any) bool {
	c, ok := compare(a, b)
	if ok {
		return c == 0
	}
	ab, aok := a.(bool)
	bb, bok := b.(bool)
	return aok && bok && ab == bb
}

// compare orders two numbers or two strings.
func compare(a, b any) (int, bool) {
	switch a := a.(type) {
	case float64:
		if b, ok := b.(float64); ok {
			return cmp.Compare(a, b), true
		}
	case string:
		if b, ok := b.(string); ok {
			return cmp.Compare(a, b), true
		}
	}
	return 0, false
}
