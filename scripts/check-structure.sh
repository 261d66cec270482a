#!/usr/bin/env bash
# The structural promises of DESIGN.md, checked on the source tree; exits non-zero naming each broken one.
set -uo pipefail
cd "$(dirname "$0")/.."
failures=0
fail() { echo "structure: $*" >&2; failures=$((failures + 1)); }

# Serve depends on the serving contracts only: no store, no Lab, no training.
if grep -rnE '^(public |package |@_exported )?import (DuetStore|DuetLab|DuetTraining)\b' Sources/DuetServe; then
  fail "DuetServe imports a module it must not (see above)"
fi
if grep -rnE '^(public |package |@_exported )?import DuetServe\b' Sources/DuetLab; then
  fail "DuetLab imports DuetServe"
fi
# Only the Lab's promotion moves the alias; the executable calls no registry write.
if grep -rnE 'registry\.(promote|rollback|rollbackIndex|publish|apply|start|stop|create|record|register|changePhase|setStatus|add)\(' Sources/duet; then
  fail "Sources/duet calls a registry write directly; go through the Lab"
fi
if grep -rnE 'registry\.(promote|rollback)\(' Sources --include=*.swift | grep -v '^Sources/DuetLab/Promotion.swift:'; then
  fail "something other than Lab.promote / Lab.rollback moves the production alias"
fi
# Refusals are the rules' words: backends hold storage code only.
if grep -rnE 'DuetError\.(refused|conflict)\(' Sources/DuetStore --include=*.swift | grep -vE '^Sources/DuetStore/(Rules/|Postgres/PostgresSchema.swift)'; then
  fail "a backend under Sources/DuetStore writes a refusal of its own; put the rule in Sources/DuetStore/Rules"
fi
# A portable build: kernels pick their instruction set at run time, so no CPU flags in the manifest.
if grep -n 'unsafeFlags' Package.swift; then
  fail "Package.swift uses unsafeFlags"
fi
# A thin executable.
while read -r lines file; do
  [ "$file" = total ] && continue
  [ "$lines" -gt 200 ] && fail "$file has $lines lines (at most 200 in Sources/duet)"
done < <(wc -l Sources/duet/*.swift)

if [ "$failures" -gt 0 ]; then echo "structure: $failures problem(s)" >&2; exit 1; fi
echo "structure: Serve's imports, promotion's single path, rules in one place, no unsafeFlags, thin executable: ok"
