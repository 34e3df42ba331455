#!/usr/bin/env bash
# Type-check, lint and test the ops-executor edge function with Deno.
#
# Deno comes from the npm registry (the "deno" package ships the official
# binary in a per-platform optional dependency, @deno/linux-x64-glibc and
# friends), installed into a cache directory so that nothing is needed
# beforehand but node and npm. A deno already on PATH is used as it is.
#
#   deploy/test-deno.sh            # from anywhere in the repository
#
# Environment: DENO_VERSION (default below), OPSD_DENO_CACHE (default
# <repo>/.tmp/deno, git-ignored).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fn_dir="$repo/supabase/functions/ops-executor"
version="${DENO_VERSION:-2.9.6}"
cache="${OPSD_DENO_CACHE:-$repo/.tmp/deno}"

deno_bin() {
	if command -v deno >/dev/null 2>&1; then
		command -v deno
		return
	fi
	local bin="$cache/npm/node_modules/.bin/deno"
	if [[ ! -x "$bin" ]] || [[ "$("$bin" --version 2>/dev/null | head -n1)" != "deno $version "* ]]; then
		command -v npm >/dev/null 2>&1 || { echo "test-deno.sh: need deno on PATH, or npm to install it" >&2; exit 1; }
		mkdir -p "$cache/npm"
		echo "test-deno.sh: installing deno@$version from npm into $cache/npm" >&2
		# --ignore-scripts: the package's postinstall only re-links the binary
		# that the optional dependency already provides.
		npm install --prefix "$cache/npm" --no-save --no-audit --no-fund --ignore-scripts \
			--loglevel=error "deno@$version" >&2
		if ! "$bin" --version >/dev/null 2>&1; then
			# Without the postinstall the wrapper may not be linked: use the
			# platform package's binary directly.
			local platform
			for platform in "$cache/npm/node_modules/@deno/"*/deno; do
				[[ -x "$platform" ]] && bin="$platform" && break
			done
			"$bin" --version >/dev/null 2>&1 || { echo "test-deno.sh: npm gave no deno binary for this platform" >&2; exit 1; }
		fi
	fi
	echo "$bin"
}

deno="$(deno_bin)"
export DENO_DIR="$cache/dir" # module cache; the function imports nothing remote
export DENO_NO_UPDATE_CHECK=1 NO_COLOR=1

cd "$repo"
"$deno" --version | head -n1
"$deno" fmt --check --line-width 120 "$fn_dir"
"$deno" lint "$fn_dir"
"$deno" check "$fn_dir/index.ts" "$fn_dir/handler.ts"
"$deno" test --no-prompt --allow-net=127.0.0.1 "$fn_dir"
