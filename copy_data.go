package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/assistantd/assistantd/db"
)

// copyData is `assistantd copy-data --from A --to B`: every record and file
// content of one store copied into another, empty one (SQLite data
// directory to PostgreSQL, or back), with a final count per table.
func copyData(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("assistantd copy-data", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the store to copy: a data directory (SQLite) or a postgres:// URL")
	to := fs.String("to", "", "the empty store to copy into: a data directory (SQLite, created if needed) or a postgres:// URL")
	fromData := fs.String("from-data", "", "with a postgres:// --from whose file contents are in a directory (--blob-store dir): its data directory")
	toData := fs.String("to-data", "", "with a postgres:// --to: keep file contents in this data directory (--blob-store dir) instead of the database")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: assistantd copy-data --from SOURCE --to TARGET\n\n"+
			"Copies every object, file content and user of SOURCE into TARGET, which must be empty,\n"+
			"keeping ids, order and timestamps. Stop the servers of both stores first.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *from == "" || *to == "" || fs.NArg() > 0 {
		fs.Usage()
		return errors.New("copy-data needs --from and --to")
	}
	open := func(what, where, data string) (*db.Store, error) {
		var opts []db.Option
		dir := where
		if db.IsPostgresURL(where) {
			opts = append(opts, db.WithDatabaseURL(where))
			dir = data
			if data != "" {
				opts = append(opts, db.WithBlobStore(db.BlobsDir))
			} else {
				tmp, err := os.MkdirTemp("", "assistantd-copy-")
				if err != nil {
					return nil, err
				}
				defer os.RemoveAll(tmp) // holds nothing: contents are in the database
				dir = tmp
			}
		} else if data != "" {
			return nil, fmt.Errorf("--%s-data goes with a postgres:// --%s", what, what)
		}
		s, err := db.Open(ctx, dir, opts...)
		if err != nil {
			return nil, fmt.Errorf("open --%s: %w", what, err)
		}
		s.StartupDone()
		return s, nil
	}
	if !db.IsPostgresURL(*from) {
		if _, err := os.Stat(*from); err != nil {
			return fmt.Errorf("--from: %w", err)
		}
	}
	src, err := open("from", *from, *fromData)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := open("to", *to, *toData)
	if err != nil {
		return err
	}
	defer dst.Close()

	last := ""
	counts, err := db.Copy(ctx, src, dst, func(table string, done, total int64) {
		if table != last && last != "" {
			fmt.Fprintln(stderr)
		}
		last = table
		fmt.Fprintf(stderr, "\r%-28s %s %d/%d", table, bar(done, total), done, total)
	})
	if last != "" {
		fmt.Fprintln(stderr)
	}
	if len(counts) > 0 {
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "table\tsource\ttarget\t")
		for _, c := range counts {
			fmt.Fprintf(tw, "%s\t%d\t%d\t\n", c.Table, c.Source, c.Target)
		}
		tw.Flush()
	}
	if err != nil {
		return fmt.Errorf("copy-data: %w", err)
	}
	fmt.Fprintln(stdout, "copied: every count matches")
	return nil
}

// bar draws done of total as a 20-cell progress bar.
func bar(done, total int64) string {
	cells := 20
	full := cells
	if total > 0 {
		full = int(done * int64(cells) / total)
	}
	b := make([]rune, cells)
	for i := range b {
		b[i] = '·'
		if i < full {
			b[i] = '█'
		}
	}
	return "[" + string(b) + "]"
}
