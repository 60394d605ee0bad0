package replicas

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// balancer starts Debian's nginx as a round-robin load balancer over the
// replicas on loopback, configured as tests/cluster.sh does (no
// buffering, so each event passes at once), and returns its base URL.
// Each response names the replica that served it in X-Upstream. The test
// skips without nginx, except on CI (.ci/run installs nginx-light).
func (c *cluster) balancer(replicas ...*replica) string {
	t := c.t
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("nginx is missing: %v", err)
		}
		t.Skipf("nginx is missing: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	var servers strings.Builder
	for _, r := range replicas {
		fmt.Fprintf(&servers, "        server %s max_fails=1 fail_timeout=2s;\n", strings.TrimPrefix(r.URL, "http://"))
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	conf := fmt.Sprintf(`%[1]s
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    client_max_body_size 0;
    upstream assistantd {
%[3]s    }
    server {
        listen %[4]s;
        location / {
            proxy_pass http://assistantd;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_buffering off;
            proxy_read_timeout 1h;
            proxy_next_upstream error timeout;
            add_header X-Upstream $upstream_addr always;
        }
    }
}
`, user, dir, servers.String(), addr)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
	logs := &logBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	eventually(t, 10*time.Second, "nginx to listen", func() bool {
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx exited: %s%s", logs.String(), b)
		default:
		}
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
	return "http://" + addr
}

// TestReconnectThroughBalancer: the web app's live thread stream, read
// through nginx balancing two API replicas round-robin, is cut; the
// client's reconnect with Last-Event-ID lands (round-robin) on the other
// replica and reads the rest of the answer, nothing lost or repeated.
func TestReconnectThroughBalancer(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	admin := []string{"--admin-email", "admin@example.com", "--admin-password", "correct horse battery"}
	a := c.start("a", append([]string{"--role", "api"}, admin...)...)
	c.start("w", "--role", "worker")
	b := c.start("b", append([]string{"--role", "api"}, admin...)...)
	lb := c.balancer(a, b)
	names := map[string]string{strings.TrimPrefix(a.URL, "http://"): "a", strings.TrimPrefix(b.URL, "http://"): "b"}
	client := openai.NewClient(option.WithBaseURL(lb+"/v1/"), option.WithAPIKey(c.key), option.WithMaxRetries(0))
	ctx := context.Background()
	as, err := client.Beta.Assistants.New(ctx, openai.BetaAssistantNewParams{Model: "fake-model"})
	if err != nil {
		t.Fatal(err)
	}
	run, err := client.Beta.Threads.NewAndRun(ctx, streamParams(as.ID, "balanced [[slow 30ms]] [[chunks 60]]"))
	if err != nil {
		t.Fatal(err)
	}
	browser := signInAt(t, lb, "admin@example.com", "correct horse battery")

	var text strings.Builder
	ids := map[string]bool{}
	var last string
	deltas := 0
	read := func(ev liveEvent) {
		if ids[ev.id] {
			t.Errorf("event %s read twice", ev.id)
		}
		ids[ev.id], last = true, ev.id
		if ev.event == "thread.message.delta" {
			text.WriteString(deltaText(ev.data))
			deltas++
		}
	}
	first := readLiveAt(t, browser, lb, "nginx", run.ThreadID, "", func(ev liveEvent) bool {
		read(ev)
		return deltas < 15
	})
	if row := c.runRow(run.ID); row.Status != "in_progress" {
		t.Fatalf("the run is %s before the reconnect; the test needs it streaming", row.Status)
	}
	var completed string
	second := readLiveAt(t, browser, lb, "nginx", run.ThreadID, last, func(ev liveEvent) bool {
		read(ev)
		if ev.event == "thread.message.completed" {
			var m openai.Message
			_ = json.Unmarshal(ev.data, &m)
			completed = msgText(m)
		}
		return ev.event != "thread.run.completed"
	})
	from, to := names[first.Get("X-Upstream")], names[second.Get("X-Upstream")]
	if from == "" || to == "" || from == to {
		t.Fatalf("the stream was served by %q (%s), the reconnect by %q (%s): want two replicas",
			from, first.Get("X-Upstream"), to, second.Get("X-Upstream"))
	}
	t.Logf("the live stream was read from replica %s, then through the balancer from %s", from, to)
	if text.String() != words(60) || completed != words(60) {
		t.Errorf("deltas across both connections gave %q, completed message %q; want %q", text.String(), completed, words(60))
	}
}
