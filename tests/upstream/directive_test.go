package upstream

import "testing"

func TestDirective(t *testing.T) {
	sc := parse(`x [[call f {"c":[1,2]}]] [[call g {}]] [[slow 5ms]]`)
	if len(sc.calls) != 2 || sc.calls[0].Function.Arguments != `{"c":[1,2]}` || sc.calls[1].Function.Name != "g" || sc.slow.Milliseconds() != 5 {
		t.Fatalf("%+v", sc)
	}
}
