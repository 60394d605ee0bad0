// Command fake-upstream serves the scripted OpenAI-compatible upstream of
// package upstream over HTTP, for the Node end-to-end suite and the load
// generator. It prints "fake upstream listening on http://ADDR" and serves
// until interrupted.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/assistantd/assistantd/tests/upstream"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	delay := flag.Duration("chunk-delay", 0, "delay before every streamed chunk")
	s := upstream.New()
	flag.Func("script", "MESSAGE=>DIRECTIVES: a last user message MESSAGE acts as if it carried DIRECTIVES (repeatable)",
		func(v string) error {
			msg, directives, ok := strings.Cut(v, "=>")
			if !ok {
				return fmt.Errorf("want MESSAGE=>DIRECTIVES, got %q", v)
			}
			s.Script(msg, directives)
			return nil
		})
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s.ChunkDelay = *delay
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	fmt.Printf("fake upstream listening on http://%s\n", ln.Addr())
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
