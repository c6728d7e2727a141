#!/usr/bin/env bash
# Fails when the generated code in src/events/gen (or the generated event reference) is not what
# the proto files produce now. Regenerates into the work tree, then asks git for differences.
set -euo pipefail
cd "$(dirname "$0")/.."
npx buf lint
npm run --silent generate
if ! git diff --quiet --exit-code -- src/events/gen || [ -n "$(git ls-files --others --exclude-standard -- src/events/gen)" ]; then
  echo "generated code is stale: run 'npm run generate' and commit src/events/gen" >&2
  git --no-pager diff --stat -- src/events/gen >&2
  exit 1
fi

# The event reference is generated from the proto files too.
node --import tsx scripts/gen-event-docs.ts --check
echo "generated code and docs/events.md are current"
