package validate

import (
	"bytes"
	"encoding/json"
)

// Opt is a request field that distinguishes absent, null and a value, which
// modify endpoints need ("name": null clears the name; no "name" keeps it).
type Opt[T any] struct {
	Set  bool // the field was present
	Null bool // it was JSON null
	V    T
}

// Some is a present, non-null value.
func Some[T any](v T) Opt[T] { return Opt[T]{Set: true, V: v} }

// Null is a present JSON null.
func Null[T any]() Opt[T] { return Opt[T]{Set: true, Null: true} }

// UnmarshalJSON records presence and decodes strictly (unknown nested
// fields are errors, as they are at the top level).
func (o *Opt[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		o.Null = true
		var zero T
		o.V = zero
		return nil
	}
	return Strict(b, &o.V)
}

// Ptr returns the value's address, or nil when absent or null.
func (o Opt[T]) Ptr() *T {
	if !o.Set || o.Null {
		return nil
	}
	v := o.V
	return &v
}

// Strict decodes JSON refusing unknown fields.
func Strict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
