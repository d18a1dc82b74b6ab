#!/usr/bin/env bash
# scripts/lint.sh: `make lint`. Runs every check, then says which failed:
#   1. format: clang-format --dry-run --Werror with the repo's .clang-format
#      over the C files of src/ tools/ tests/unit tests/fuzz (it reports;
#      it never rewrites a file);
#   2. layering: scripts/layering.py, the layer table of docs/architecture.md
#      against the includes and the objects' symbols (needs the objects of
#      BUILD, default build/: `make lint` builds them first);
#   3. layering-tests: the checker's own tests (tests/lint);
#   4. cppcheck over src/ (warning and performance checks).
# Exit status: 0 when every check passed, 1 otherwise.
# Env: BUILD (build), CLANG_FORMAT (clang-format), PY (/usr/bin/python3).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

PY=${PY:-/usr/bin/python3}
CLANG_FORMAT=${CLANG_FORMAT:-clang-format}
export BUILD=${BUILD:-build}
failed=()

echo "== format (clang-format --dry-run --Werror)"
mapfile -t files < <(find src tools tests/unit tests/fuzz -name '*.[ch]' | sort)
bad=()
for f in "${files[@]}"; do
	"$CLANG_FORMAT" --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if ((${#bad[@]})); then
	printf '  not formatted: %s\n' "${bad[@]}"
	echo "format: ${#bad[@]} of ${#files[@]} files differ from .clang-format" \
		"(see: $CLANG_FORMAT --dry-run FILE; fix: $CLANG_FORMAT -i FILE)"
	failed+=(format)
else
	echo "format: ${#files[@]} files ok"
fi

echo "== layering (scripts/layering.py, docs/architecture.md)"
"$PY" scripts/layering.py || failed+=(layering)

echo "== layering-tests (tests/lint)"
"$PY" -m pytest -q -p no:cacheprovider tests/lint || failed+=(layering-tests)

echo "== cppcheck"
mapfile -t csrc < <(find src -name '*.c' | sort)
cppcheck --quiet --error-exitcode=1 --enable=warning,performance -Isrc "${csrc[@]}" ||
	failed+=(cppcheck)

if ((${#failed[@]})); then
	echo "lint: FAILED: ${failed[*]}"
	exit 1
fi
echo "lint: all checks passed"
