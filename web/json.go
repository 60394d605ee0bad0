package web

import (
	"encoding/json"

	"github.com/labstack/echo/v5"
)

// jsonSerializer writes JSON as OpenAI does: no HTML escaping of <, > and &
// (which would turn "<" into "\u003c" in model text), no trailing newline
// games. Decoding is done by the handlers themselves.
type jsonSerializer struct{}

func (jsonSerializer) Serialize(c *echo.Context, i any, indent string) error {
	enc := json.NewEncoder(c.Response())
	enc.SetEscapeHTML(false)
	if indent != "" {
		enc.SetIndent("", indent)
	}
	return enc.Encode(i)
}

func (jsonSerializer) Deserialize(c *echo.Context, i any) error {
	return json.NewDecoder(c.Request().Body).Decode(i)
}
