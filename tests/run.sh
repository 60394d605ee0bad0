#!/usr/bin/env bash
# tests/run.sh: the one command that runs every check and test of assistantd.
#
#   tests/run.sh
#
# Needs Go, Node.js/npm and, for tests/browser, Chromium at /usr/bin/chromium
# (.ci/run installs it). Run it from anywhere: it changes to the repository
# root. It stops at the first failing step and exits non-zero.
#
# Environment:
#   RACE=0   run `go test` without the race detector (default: with it, when
#            cgo is available, which -race needs)
#   ASSISTANTD_TEST_POSTGRES=postgres://…  a PostgreSQL server where the
#            tests may create databases; without it a private one is started
#            from Debian's postgresql package (initdb + pg_ctl in a temporary
#            directory, socket only) and stopped at the end. The db package's
#            tests run on both stores; the Go API suite and the Node suite run
#            once on SQLite and once on PostgreSQL; tests/replicas (several
#            assistantd processes on one database) runs in `go test ./...`
#            on PostgreSQL only. Without PostgreSQL
#            installed the PostgreSQL passes are skipped (CI=true: an error).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

started=$SECONDS
step_started=$SECONDS
step=""
section() {
	if [[ -n $step ]]; then
		printf '    (%s: %ds)\n' "$step" $((SECONDS - step_started))
	fi
	step=$1
	step_started=$SECONDS
	printf '\n==> %s\n' "$step"
}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/assistantd-run.XXXXXX")
pgdir=""
finish() {
	local status=$?
	if [[ -n $pgdir ]]; then
		pg_as_owner "$pgbin/pg_ctl" -D "$pgdir/data" -m immediate -w stop >/dev/null 2>&1 || true
		rm -rf "$pgdir"
	fi
	rm -rf "$tmp"
	if ((status != 0)); then
		printf '\nFAILED in step: %s (exit %d)\n' "$step" "$status" >&2
	fi
}
trap finish EXIT

# Go sources to check: everything but generated templ output, vendored
# node packages and testdata (which the go tool ignores too).
go_files() {
	find . -name '*.go' -not -name '*_templ.go' \
		-not -path './.git/*' -not -path '*/node_modules/*' -not -path '*/testdata/*' -print0
}

section "gofmt"
unformatted=$(go_files | xargs -0 -r gofmt -l)
if [[ -n $unformatted ]]; then
	echo "these files need gofmt -w:" >&2
	echo "$unformatted" >&2
	exit 1
fi
echo "ok"

section "go vet ./..."
go vet ./...
echo "ok"

section "go mod tidy -diff"
# go.mod must list exactly what the code imports, direct requirements
# unmarked: tidy would change nothing.
go mod tidy -diff
echo "ok"

section "templ generate is up to date"
templ_sources=$(find . -name '*.templ' -not -path './.git/*' -not -path '*/node_modules/*' | sort)
if [[ -z $templ_sources ]]; then
	echo "no .templ files yet; skipped"
else
	templ_version=$(go list -m -f '{{.Version}}' github.com/a-h/templ)
	snapshot() {
		find . -name '*_templ.go' -not -path './.git/*' -not -path '*/node_modules/*' -print0 |
			sort -z | xargs -0 -r sha256sum
	}
	# templ writes source paths relative to where it runs into the generated
	# code, so generate from each top-level directory holding .templ files,
	# as `cd views && templ generate` does.
	templ_dirs=$(echo "$templ_sources" | cut -d/ -f2 | sort -u)
	before=$(snapshot)
	for dir in $templ_dirs; do
		(cd "$dir" && go run "github.com/a-h/templ/cmd/templ@${templ_version}" generate)
	done
	after=$(snapshot)
	if [[ $before != "$after" ]]; then
		echo "templ generate changed generated files; run it (cd <dir> && go run github.com/a-h/templ/cmd/templ@${templ_version} generate) and commit the result:" >&2
		diff <(echo "$before") <(echo "$after") >&2 || true
		exit 1
	fi
	# What is generated must also be what is committed.
	git diff --exit-code -- '*_templ.go'
	untracked=$(git ls-files --others --exclude-standard -- '*_templ.go')
	if [[ -n $untracked ]]; then
		echo "generated files not committed:" >&2
		echo "$untracked" >&2
		exit 1
	fi
	echo "ok (templ ${templ_version})"
fi

section "front-end assets (static/)"
if [[ -f static/package.json ]]; then
	(cd static && npm ci --no-audit --no-fund)
else
	echo "no static/package.json; skipped"
fi

section "build the binary"
export ASSISTANTD_BIN="$tmp/assistantd"
go build -o "$ASSISTANTD_BIN" .
"$ASSISTANTD_BIN" --help >/dev/null
echo "built $ASSISTANTD_BIN"
# The scripted Chat Completions upstream the Node run tests start.
export FAKE_UPSTREAM_BIN="$tmp/fake-upstream"
go build -o "$FAKE_UPSTREAM_BIN" ./tests/upstream/cmd/fake-upstream
echo "built $FAKE_UPSTREAM_BIN"

section "PostgreSQL for the tests"
# PostgreSQL refuses to run as root: as root the cluster belongs to the
# postgres user the package creates.
pg_as_owner() {
	if ((EUID == 0)); then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}
if [[ -n ${ASSISTANTD_TEST_POSTGRES:-} ]]; then
	echo "using ASSISTANTD_TEST_POSTGRES"
else
	pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	if [[ -z $pgbin ]]; then
		if [[ ${CI:-} == true ]]; then
			echo "PostgreSQL is not installed (Debian package postgresql)" >&2
			exit 1
		fi
		echo "note: PostgreSQL is not installed (Debian package postgresql): its test passes are skipped"
	else
		pgdir=$(mktemp -d "${TMPDIR:-/tmp}/assistantd-pg.XXXXXX")
		if ((EUID == 0)); then
			chown postgres: "$pgdir"
		fi
		pg_as_owner "$pgbin/initdb" -D "$pgdir/data" -U postgres -A trust -E UTF8 --no-locale >"$pgdir/initdb.log"
		# A socket in the temporary directory and no TCP: no port to race
		# for. fsync off: the cluster is thrown away.
		pg_as_owner "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w -o \
			"-k $pgdir -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=500" \
			start >/dev/null
		export ASSISTANTD_TEST_POSTGRES="postgres:///postgres?host=$pgdir&user=postgres"
		echo "started $("$pgbin/postgres" --version) in $pgdir"
	fi
fi

section "go test ./..."
race=()
if [[ ${RACE:-1} != 0 ]]; then
	if [[ $(go env CGO_ENABLED) == 1 ]] && command -v "$(go env CC)" >/dev/null; then
		race=(-race)
	else
		echo "note: no C compiler for cgo, running go test without -race"
	fi
fi
# -count=1: always run, never report cached results as a pass.
go test -count=1 "${race[@]}" ./...

section "Go API suite on PostgreSQL (tests/apitest)"
if [[ -n ${ASSISTANTD_TEST_POSTGRES:-} ]]; then
	ASSISTANTD_TEST_STORE=postgres go test -count=1 "${race[@]}" ./tests/apitest/
else
	echo "no PostgreSQL; skipped"
fi

section "Node SDK end-to-end tests (tests/e2e)"
(cd tests/e2e && npm ci --no-audit --no-fund && npm test)

section "Node SDK end-to-end tests on PostgreSQL (tests/e2e)"
if [[ -n ${ASSISTANTD_TEST_POSTGRES:-} ]]; then
	(cd tests/e2e && ASSISTANTD_E2E_POSTGRES=$ASSISTANTD_TEST_POSTGRES npm test)
else
	echo "no PostgreSQL; skipped"
fi

section "browser tests (tests/browser)"
if [[ -f tests/browser/package.json ]]; then
	(cd tests/browser && npm ci --no-audit --no-fund && npm test)
else
	echo "no tests/browser/package.json; skipped"
fi

section "done"
printf 'all checks and tests passed in %ds\n' $((SECONDS - started))
