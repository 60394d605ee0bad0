package db

import (
	"encoding/json"
	"testing"
)

func TestCodeOutputJSON(t *testing.T) {
	tests := []struct {
		out  CodeOutput
		want string
	}{
		{CodeOutput{Type: "logs"}, `{"type":"logs","logs":""}`},
		{CodeOutput{Type: "logs", Logs: "2\n"}, `{"type":"logs","logs":"2\n"}`},
		{CodeOutput{Type: "image", Image: &CodeImage{FileID: "file-1"}}, `{"type":"image","image":{"file_id":"file-1"}}`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.out)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tt.want {
			t.Errorf("marshal %+v = %s, want %s", tt.out, b, tt.want)
		}
	}
}
