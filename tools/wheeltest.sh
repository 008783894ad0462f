#!/usr/bin/env bash
# wheeltest.sh PYTHON: install dist/'s wheel for PYTHON's version into a fresh
# venv and run, with no Go and no C compiler on PATH, a seed tutorial through
# `python -m mpgo` and the Pool test that SIGKILLs a worker, against the
# installed mpgo (never the checkout's python/). Used by `make wheel-test`.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
py=$1
tag=$("$py" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
shopt -s nullglob
wheels=(dist/mpgo-*-"$tag"-"$tag"-manylinux*.whl)
if [ ${#wheels[@]} -ne 1 ]; then
	echo "wheeltest: want one manylinux wheel for $tag in dist/, found ${#wheels[@]} (make wheel)" >&2
	exit 1
fi
wheel=$repo/${wheels[0]}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" -m venv "$tmp/venv"
# Runtime dependencies come from PyPI, as for a user; pytest runs the tests.
"$tmp/venv/bin/pip" install -q "$wheel" pytest

# Only the venv on PATH, and nothing of the caller's environment.
run() {
	(cd "$tmp" && env -i HOME="$tmp" LANG=C.UTF-8 PATH="$tmp/venv/bin" "$@")
}
for tool in go gcc cc; do
	if run /bin/sh -c "command -v $tool" >/dev/null 2>&1; then
		echo "wheeltest: $tool is on the test PATH" >&2
		exit 1
	fi
done

echo "== $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB), $("$py" --version)"
run python -m mpgo "$repo/tests/tutorials/seed002_workers.py" | tee "$tmp/seed002.out"
test "$(tail -n 1 "$tmp/seed002.out")" = "All workers completed"
run python -m pytest -p no:cacheprovider \
	"$repo/tests/test_tutorials.py::test_tutorial[seed002_workers.py]" \
	"$repo/tests/test_pool.py::TestWorkerDeath::test_sigkill_during_map_fails_only_that_task" \
	| tee "$tmp/pytest.out"
grep -q "^mpgo: $tmp/venv/lib/" "$tmp/pytest.out" || {
	echo "wheeltest: the tests did not run the installed mpgo" >&2
	exit 1
}
