// Command seedusage adds usage to a project of a stopped or running
// assistantd's SQLite data directory, through the store's own RecordUsage:
// the browser tests chart it on the usage page. (Once runs record their
// usage, a test can make it with a run against the scripted upstream
// instead.)
//
//	seedusage --data DIR --project proj_… --model NAME --requests N --input N --output N
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/assistantd/assistantd/db"
)

func main() {
	data := flag.String("data", "", "the server's data directory")
	project := flag.String("project", db.DefaultProjectID, "the project")
	model := flag.String("model", "", "the model")
	requests := flag.Int("requests", 1, "how many requests")
	input := flag.Int64("input", 0, "input tokens of each request")
	output := flag.Int64("output", 0, "output tokens of each request")
	flag.Parse()
	if err := run(*data, *project, *model, *requests, *input, *output); err != nil {
		fmt.Fprintln(os.Stderr, "seedusage:", err)
		os.Exit(1)
	}
}

func run(data, project, model string, requests int, input, output int64) error {
	if data == "" || model == "" {
		return fmt.Errorf("--data and --model are required")
	}
	ctx := context.Background()
	s, err := db.Open(ctx, data)
	if err != nil {
		return err
	}
	defer s.Close()
	for range requests {
		if err := s.RecordUsage(ctx, project, model, input, output); err != nil {
			return err
		}
	}
	return nil
}
