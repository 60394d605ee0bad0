package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/assistantd/assistantd/db"
)

// threadsToConversations is `assistantd threads-to-conversations
// [--thread ID]… | --all`: each thread continued as a conversation (see
// db.Store.ThreadToConversation), with a progress bar on stderr and the
// mapping printed as CSV (thread_id,conversation_id) on stdout. The
// threads are left as they are; it can run beside a server on the same
// store.
func threadsToConversations(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("assistantd threads-to-conversations", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	data := fs.String("data", env("ASSISTANTD_DATA", "./data"), "the data directory (SQLite) (env ASSISTANTD_DATA)")
	storeFlags := addStoreFlags(fs, env)
	var threads []string
	fs.Func("thread", "a thread to convert (repeat for several)", func(id string) error {
		threads = append(threads, id)
		return nil
	})
	all := fs.Bool("all", false, "convert every thread made through the Assistants API")
	project := fs.String("project", db.DefaultProjectID, "the project whose threads to convert (the conversations are made there)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: assistantd threads-to-conversations [--thread ID]... | --all\n\n"+
			"Creates a conversation from each thread's history (messages, tool calls and their outputs, in\n"+
			"order), for the Responses API to continue; the threads are left unchanged. Prints the mapping\n"+
			"as CSV (thread_id,conversation_id).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || (len(threads) == 0) == !*all {
		fs.Usage()
		return errors.New("threads-to-conversations needs --thread (one or more) or --all")
	}
	sc, err := storeFlags()
	if err != nil {
		return err
	}
	if sc.DatabaseURL == "" {
		if _, err := os.Stat(*data); err != nil {
			return fmt.Errorf("--data: %w", err)
		}
	}
	store, err := db.Open(ctx, *data, sc.options()...)
	if err != nil {
		return err
	}
	defer store.Close()
	store.StartupDone()
	ctx = db.WithProject(ctx, *project)
	if *all {
		if threads, err = store.ConvertibleThreads(ctx); err != nil {
			return err
		}
	}

	out := csv.NewWriter(stdout)
	if err := out.Write([]string{"thread_id", "conversation_id"}); err != nil {
		return err
	}
	total, failed := int64(len(threads)), 0
	progress := func(done int64) {
		fmt.Fprintf(stderr, "\r%-28s %s %d/%d", "threads", bar(done, total), done, total)
	}
	progress(0)
	for i, id := range threads {
		if err := ctx.Err(); err != nil {
			fmt.Fprintln(stderr)
			out.Flush()
			return err
		}
		conv, err := store.ThreadToConversation(ctx, id)
		if err != nil {
			failed++
			fmt.Fprintf(stderr, "\rthread %s: %v\n", id, err)
		} else if err := out.Write([]string{id, conv.ID}); err != nil {
			return err
		}
		out.Flush()
		progress(int64(i + 1))
	}
	fmt.Fprintln(stderr)
	if err := out.Error(); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d threads were not converted", failed, total)
	}
	return nil
}
