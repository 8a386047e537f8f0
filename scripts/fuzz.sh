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
	# Go's fuzz coordinator can fail with a bare "context deadline
	# exceeded" when it stops its workers late on a loaded machine; no
	# input failed then, and the target runs once more. A failing input
	# ("Failing input written to ...") always fails the run.
	for try in 1 2; do
		if out=$(go test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1); then
			printf '%s\n' "$out"
			break
		fi
		printf '%s\n' "$out"
		if ((try == 2)) || grep -q 'Failing input written' <<<"$out" || ! grep -q 'context deadline exceeded' <<<"$out"; then
			exit 1
		fi
		echo "==> $name: the fuzz engine timed out stopping its workers, with no failing input; running it again"
	done
	found=$((found + 1))
done < <(grep -rn --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' . | sed 's|^\./||')
if ((found == 0)); then
	echo "fuzz.sh: no fuzz targets found" >&2
	exit 1
fi
echo "fuzz.sh: $found targets ran for $FUZZTIME each"
