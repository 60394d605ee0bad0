package upstream

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func TestDirective(t *testing.T) {
	sc := parse(`x [[call f {"c":[1,2]}]] [[call g {}]] [[slow 5ms]]`)
	if len(sc.calls) != 2 || sc.calls[0].Function.Arguments != `{"c":[1,2]}` || sc.calls[1].Function.Name != "g" || sc.slow.Milliseconds() != 5 {
		t.Fatalf("%+v", sc)
	}
}

// TestScript: a scripted message acts as if it carried the directives.
func TestScript(t *testing.T) {
	s := New()
	s.Script("What's the weather?", `[[call get_weather {"location":"SF"}]]`)
	srv := httptest.NewServer(s)
	defer srv.Close()
	for _, tc := range []struct{ msg, want string }{
		{"What's the weather?", `"name":"get_weather"`},
		{"Something else", `You said: Something else`},
	} {
		body := `{"model":"m","messages":[{"role":"user","content":` + strconv.Quote(tc.msg) + `}]}`
		res, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if !strings.Contains(string(b), tc.want) {
			t.Errorf("%q answered %s, want %s", tc.msg, b, tc.want)
		}
	}
}
