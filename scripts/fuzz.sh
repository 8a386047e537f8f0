#!/usr/bin/env bash
# fuzz.sh - run every Go fuzz target in the repository for a bounded time.
#   FUZZTIME=5s scripts/fuzz.sh      (default 5s per target)
# Each target's seed corpus (f.Add, and testdata/fuzz/<Target> if present)
# also runs in every plain `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME="${FUZZTIME:-5s}"
found=0
while IFS=: read -r file _ line; do
	name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/' <<<"$line")
	pkg="./$(dirname "$file")"
	echo "==> fuzz $pkg $name ($FUZZTIME)"
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg"
	found=$((found + 1))
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' . | sed 's|^\./||')
if ((found == 0)); then
	echo "fuzz.sh: no fuzz targets found" >&2
	exit 1
fi
echo "fuzz.sh: $found targets ran for $FUZZTIME each"
