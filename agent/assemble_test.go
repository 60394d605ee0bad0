package agent

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"
)

func TestAssemblerLenientToolCalls(t *testing.T) {
	type call struct{ Name, Args string }
	tests := []struct {
		name   string
		chunks []string // tool_calls delta entries as the upstream sent them
		want   []call
	}{
		{
			name: "openai: id and name first, then fragments by index",
			chunks: []string{
				`{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}`,
				`{"index":0,"function":{"arguments":"{\"city\":"}}`,
				`{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":""}}`,
				`{"index":0,"function":{"arguments":"\"Paris\"}"}}`,
				`{"index":1,"function":{"arguments":"{}"}}`,
			},
			want: []call{{"get_weather", `{"city":"Paris"}`}, {"get_time", `{}`}},
		},
		{
			name: "ollama: whole calls, index 0 repeated",
			chunks: []string{
				`{"index":0,"id":"call_x","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}`,
				`{"index":0,"id":"call_y","type":"function","function":{"name":"f","arguments":"{\"a\":2}"}}`,
			},
			want: []call{{"f", `{"a":1}`}, {"f", `{"a":2}`}},
		},
		{
			name: "no index, no ids on fragments",
			chunks: []string{
				`{"type":"function","function":{"name":"f","arguments":"{\"q\""}}`,
				`{"function":{"arguments":":\"x\"}"}}`,
			},
			want: []call{{"f", `{"q":"x"}`}},
		},
		{
			name: "same upstream id twice continues the call",
			chunks: []string{
				`{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":"{"}}`,
				`{"index":0,"id":"c1","function":{"arguments":"}"}}`,
			},
			want: []call{{"f", `{}`}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a assembler
			for _, c := range tt.chunks {
				var tc openai.ChatCompletionChunkChoiceDeltaToolCall
				if err := json.Unmarshal([]byte(c), &tc); err != nil {
					t.Fatal(err)
				}
				a.add(tc)
			}
			var got []call
			ids := map[string]bool{}
			for _, c := range a.calls {
				got = append(got, call{c.name, c.args.String()})
				if !strings.HasPrefix(c.ID, "call_") || ids[c.ID] {
					t.Errorf("call id %q is not a fresh, unique call_ id", c.ID)
				}
				ids[c.ID] = true
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("assembled calls (-want +got):\n%s", diff)
			}
		})
	}
}
