package agent

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3/packages/ssestream"
)

// decodeAll reads every event a decoder yields, and whether it ended in
// an error.
func decodeAll(d ssestream.Decoder) ([]ssestream.Event, bool) {
	var out []ssestream.Event
	for d.Next() {
		ev := d.Event()
		out = append(out, ssestream.Event{Type: ev.Type, Data: append([]byte(nil), ev.Data...)})
	}
	return out, d.Err() != nil
}

// sdkDecode decodes body with the SDK's own text/event-stream decoder.
func sdkDecode(body io.Reader) ([]ssestream.Event, bool) {
	res := &http.Response{Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: io.NopCloser(body)}
	return decodeAll(ssestream.NewDecoder(res))
}

// checkSameAsSDK: our decoder yields what the SDK's does, whole or read a
// byte at a time.
func checkSameAsSDK(t *testing.T, input string) {
	t.Helper()
	want, wantErr := sdkDecode(strings.NewReader(input))
	for name, r := range map[string]io.Reader{"whole": strings.NewReader(input), "bytewise": iotest.OneByteReader(strings.NewReader(input))} {
		got, gotErr := decodeAll(newSSEDecoder(io.NopCloser(r)))
		if diff := cmp.Diff(want, got); diff != "" || gotErr != wantErr {
			t.Errorf("%s: events (-sdk +ours):\n%s\nerror: sdk %v, ours %v\ninput %.200q", name, diff, wantErr, gotErr, input)
		}
	}
}

func TestSSEDecoderMatchesSDK(t *testing.T) {
	long := strings.Repeat("x", 3*sseReadBuffer+17)
	huge := strings.Repeat("y", 5*4096)
	for _, input := range sseSeeds(long, huge) {
		checkSameAsSDK(t, input)
	}
}

func sseSeeds(long, huge string) []string {
	return []string{
		"",
		"data: {\"a\":1}\n\n",
		"data: {\"a\":1}\n\ndata: [DONE]\n\n",
		"event: error\ndata: {\"error\":{\"message\":\"x\"}}\n\n",
		"data: a\ndata: b\n\n",
		"data:nospace\n\n",
		"data:  two spaces\n\n",
		": comment\n\ndata: x\n\n",
		"data: crlf\r\n\r\n",
		"data: cr in\rmiddle\n\n",
		"\n\n\ndata: after blanks\n\n",
		"event: named\n\ndata: the name is reset by the blank line\n\n",
		"data: no blank line at the end\n",
		"data: no line ending at all",
		"data: x\n\ndata: last without ending",
		"id: 1\nretry: 10\ndata: other fields\n\n",
		"data\n\n",
		"data: " + long + "\n\n",
		"data: " + long + "\ndata: " + long + "\r\n\r\ndata: short\n\n",
		"event: " + long + "\ndata: x\n\n",
		"data: " + huge + "\n\n",
		"data: " + long,
	}
}

// FuzzSSEDecoder compares our decoder with the SDK's on any input (its
// seeds run with the tests).
func FuzzSSEDecoder(f *testing.F) {
	for _, s := range sseSeeds(strings.Repeat("z", sseReadBuffer+1), "") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) { checkSameAsSDK(t, input) })
}
