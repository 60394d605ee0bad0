package agent

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"

	"github.com/assistantd/assistantd/db"
)

func item(text string, isMessage bool, tokens int64) historyItem {
	return historyItem{msgs: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)}, tokens: tokens, isMessage: isMessage}
}

func texts(items []historyItem) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.msgs[0].OfUser.Content.OfString.Value)
	}
	return out
}

func TestTruncate(t *testing.T) {
	n2 := int64(2)
	history := []historyItem{item("m1", true, 10), item("m2", true, 10), item("tools", false, 10), item("m3", true, 10)}
	tests := []struct {
		name     string
		ts       *db.TruncationStrategy
		budget   int64
		want     []string
		wantFits bool
	}{
		{"auto without a budget keeps everything", &db.TruncationStrategy{Type: "auto"}, 0, []string{"m1", "m2", "tools", "m3"}, true},
		{"last_messages keeps the last N messages and the rounds after the first", &db.TruncationStrategy{Type: "last_messages", LastMessages: &n2}, 0, []string{"m2", "tools", "m3"}, true},
		{"a budget drops the oldest items", &db.TruncationStrategy{Type: "auto"}, 5 + 20, []string{"tools", "m3"}, true},
		{"the newest item is always kept; too big does not fit", &db.TruncationStrategy{Type: "auto"}, 5 + 5, []string{"m3"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, fits := truncate(history, tt.ts, 5, tt.budget)
			if diff := cmp.Diff(tt.want, texts(got)); diff != "" || fits != tt.wantFits {
				t.Errorf("truncate fits=%v (want %v), items (-want +got):\n%s", fits, tt.wantFits, diff)
			}
		})
	}
}

func TestCountTokens(t *testing.T) {
	if n := CountTokens("hello world"); n < 2 || n > 3 {
		t.Errorf("CountTokens(hello world) = %d, want 2 or 3", n)
	}
	if n := CountTokens(""); n != 0 {
		t.Errorf("CountTokens(\"\") = %d", n)
	}
}

// BenchmarkCountTokensUnbroken counts unbroken runs of one letter, the
// input whose cost was quadratic (issue 21):
//
//	go test ./agent/ -run '^$' -bench CountTokensUnbroken -benchtime 3x
func BenchmarkCountTokensUnbroken(b *testing.B) {
	CountTokens("load the tokenizer")
	for _, n := range []int{16 << 10, 256 << 10, 1 << 20} {
		s := strings.Repeat("x", n)
		b.Run(fmt.Sprintf("%dKiB", n>>10), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				CountTokens(s)
			}
		})
	}
}
