#!/usr/bin/env bash
# tests/cluster.sh: a whole replicated deployment on this machine, for
# trying it out and for tests: a private PostgreSQL (socket only, under a
# temporary directory), three assistantd replicas on one database, and
# Debian's nginx as a round-robin load balancer in front of them, all on
# loopback.
#
#   tests/cluster.sh            # runs until Ctrl-C
#   tests/cluster.sh --check    # starts it, streams a run through the
#                               # balancer, kills a replica, checks the
#                               # cluster still answers, and stops
#
# Environment:
#   PORT=18080          the load balancer's port (replicas: PORT+1 … PORT+3)
#   UPSTREAM_URL=…      a Chat Completions upstream; default the scripted
#                       fake upstream (tests/upstream), which answers
#                       "You said: …"
#   ASSISTANTD_BIN=…    the binary to run (default: built from this tree)
#   RUN_LEASE=5s        the replicas' --run-lease
#
# Needs Debian's postgresql and nginx (nginx-light) packages. As root,
# PostgreSQL runs as the postgres user, as tests/run.sh does.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

port=${PORT:-18080}
lease=${RUN_LEASE:-5s}
key="sk-cluster-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/assistantd-cluster.XXXXXX")
chmod 755 "$tmp"
pids=()
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
if [[ -z $pgbin || ! -x $nginx_bin ]]; then
	echo "needs Debian's postgresql and nginx-light packages" >&2
	exit 1
fi
as_owner() {
	if ((EUID == 0)); then runuser -u postgres -- "$@"; else "$@"; fi
}
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
	[[ -f $tmp/nginx.pid ]] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true
	as_owner "$pgbin/pg_ctl" -D "$tmp/pg/data" -m immediate -w stop >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "==> PostgreSQL in $tmp/pg"
mkdir "$tmp/pg"
((EUID == 0)) && chown postgres: "$tmp/pg"
as_owner "$pgbin/initdb" -D "$tmp/pg/data" -U postgres -A trust -E UTF8 --no-locale >"$tmp/initdb.log"
as_owner "$pgbin/pg_ctl" -D "$tmp/pg/data" -l "$tmp/pg/log" -w -o \
	"-k $tmp/pg -c listen_addresses='' -c max_connections=300" start >/dev/null
db="postgres:///postgres?host=$tmp/pg&user=postgres"

bin=${ASSISTANTD_BIN:-}
if [[ -z $bin ]]; then
	echo "==> building assistantd"
	bin=$tmp/assistantd
	go build -o "$bin" .
fi
upstream=${UPSTREAM_URL:-}
if [[ -z $upstream ]]; then
	go build -o "$tmp/fake-upstream" ./tests/upstream/cmd/fake-upstream
	"$tmp/fake-upstream" --addr 127.0.0.1:$((port + 9)) --chunk-delay 20ms >"$tmp/upstream.log" 2>&1 &
	pids+=($!)
	upstream=http://127.0.0.1:$((port + 9))/v1
fi

replica_pids=()
for i in 1 2 3; do
	mkdir -p "$tmp/r$i"
	"$bin" --addr 127.0.0.1:$((port + i)) --data "$tmp/r$i" --api-key "$key" --database-url "$db" \
		--upstream-url "$upstream" --run-lease "$lease" >"$tmp/r$i.out" 2>"$tmp/r$i.log" &
	pids+=($!)
	replica_pids+=($!)
done
for i in 1 2 3; do
	for _ in $(seq 100); do
		curl -fsS "http://127.0.0.1:$((port + i))/healthz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	curl -fsS "http://127.0.0.1:$((port + i))/healthz" >/dev/null || { cat "$tmp/r$i.log" >&2; exit 1; }
done

echo "==> nginx on 127.0.0.1:$port"
mkdir -p "$tmp/nginx"
{
	((EUID == 0)) && echo "user root;"
	cat <<CONF
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log $tmp/nginx/access.log;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    client_max_body_size 0;
    upstream assistantd {
        server 127.0.0.1:$((port + 1)) max_fails=1 fail_timeout=2s;
        server 127.0.0.1:$((port + 2)) max_fails=1 fail_timeout=2s;
        server 127.0.0.1:$((port + 3)) max_fails=1 fail_timeout=2s;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://assistantd;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            # Server-Sent Events: pass every event on at once.
            proxy_buffering off;
            proxy_read_timeout 1h;
            proxy_next_upstream error timeout;
        }
    }
}
CONF
} >"$tmp/nginx.conf"
"$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx.conf" -g "daemon on;"

base=http://127.0.0.1:$port
cat <<INFO

assistantd cluster: $base/v1 (API key $key)
  replicas: 127.0.0.1:$((port + 1)), :$((port + 2)), :$((port + 3)); logs in $tmp/r{1,2,3}.log
  database: $db
  upstream: $upstream

INFO

if [[ ${1:-} != --check ]]; then
	echo "Ctrl-C stops everything."
	wait "${pids[0]}"
	exit 0
fi

api() { curl -fsS -H "Authorization: Bearer $key" -H "Content-Type: application/json" -H "OpenAI-Beta: assistants=v2" "$@"; }
echo "==> check: a streamed run through the balancer"
asst=$(api "$base/v1/assistants" -d '{"model":"fake-model"}' | sed -n 's/.*"id": *"\(asst_[^"]*\)".*/\1/p' | head -n 1)
api -N "$base/v1/threads/runs" -d "{\"assistant_id\":\"$asst\",\"stream\":true,\"thread\":{\"messages\":[{\"role\":\"user\",\"content\":\"hello cluster [[chunks 20]]\"}]}}" >"$tmp/stream.txt"
grep -q '^event: thread.run.completed' "$tmp/stream.txt" || { echo "stream did not complete:" >&2; cat "$tmp/stream.txt" >&2; exit 1; }
echo "ok: $(grep -c '^event: thread.message.delta' "$tmp/stream.txt") deltas, completed"
echo "==> check: kill -9 one replica; the balancer keeps answering"
kill -9 "${replica_pids[0]}"
for i in 1 2 3 4; do
	api "$base/v1/assistants/$asst" >/dev/null
done
echo "ok: the cluster answers without replica 1"
