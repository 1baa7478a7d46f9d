#!/usr/bin/env bash
# Stable ids: the same spec synthesized from two copies of the checkout, in directories of different
# depth, must give byte-identical CloudFormation templates. Otherwise a deploy from another clone (a
# colleague's laptop, CI) replaces resources, uploads the data again and changes job.json.
#
# Each copy holds the files `git ls-files -co --exclude-standard` lists (node_modules and .venv are
# symlinked), makes the demo data, and synthesizes sweeps/demo.json plus a spec of its own with a
# script-mode config whose code and data are local directories next to the spec (script code assets,
# data uploads). The cloud assembly directories lie outside both copies, at one depth, so that a path
# relative to the assembly (a bundled Lambda's source map) differs between the copies too.
#
# Usage: bash test/stable-ids.sh   (test/all.sh runs it as the check "stable-ids"; under a minute)
# Exit status: 0 when every template matches, 1 otherwise (the differences are printed).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/spot-sweep-stable-ids.XXXXXX")
# STABLE_IDS_KEEP=1 keeps the copies and the assemblies for a look (the path is printed).
if [ -n "${STABLE_IDS_KEEP:-}" ]; then echo "stable-ids: working in $work"; else trap 'rm -rf "$work"' EXIT; fi
export CDK_DISABLE_CLI_TELEMETRY=true

copies=("$work/one/spot-sweep" "$work/two/three/four/spot-sweep")
labels=(a b)

# The checkout's files (tracked and untracked, not ignored), skipping tracked files deleted in the work tree.
(
  cd "$repo"
  git ls-files -co --exclude-standard -z |
    while IFS= read -r -d '' f; do
      if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
    done |
    tar --null -T - -cf "$work/files.tar"
)

for copy in "${copies[@]}"; do
  mkdir -p "$copy"
  tar -C "$copy" -xf "$work/files.tar"
  ln -s "$repo/node_modules" "$copy/node_modules"
  ln -s "$repo/.venv" "$copy/.venv"
  (
    cd "$copy"
    PYTHONPATH=training .venv/bin/python -m two_tower.synth --out .spot-sweep/demo-data --query-noise 0.8 >/dev/null
    # A spec of its own with a script-mode config: code and data in directories next to the spec.
    mkdir -p .spot-sweep/stable-ids/code/models .spot-sweep/stable-ids/data
    printf 'print("training")\n' >.spot-sweep/stable-ids/code/models/train.py
    printf 'q,d\n1,2\n' >.spot-sweep/stable-ids/data/pairs.csv
    cat >.spot-sweep/stable-ids/script.json <<'SPEC'
{
  "name": "stable-ids",
  "budgetUsd": 5,
  "data": "data",
  "defaults": { "instanceTypes": ["g5.xlarge"] },
  "configs": [
    { "name": "script", "script": { "codeDir": "code", "entrypoint": "models/train.py" } },
    { "name": "builtin", "data": "../demo-data" }
  ]
}
SPEC
  )
done

status=0
for spec in sweeps/demo.json .spot-sweep/stable-ids/script.json; do
  name=$(basename "$spec" .json)
  for i in 0 1; do
    out="$work/out-${labels[$i]}-$name"
    if ! (cd "${copies[$i]}" && npx --no-install cdk synth --quiet -c "sweep=$spec" -o "$out" >"$work/synth-${labels[$i]}-$name.log" 2>&1); then
      cat "$work/synth-${labels[$i]}-$name.log"
      echo "stable-ids: cdk synth of $spec failed in ${copies[$i]}" >&2
      exit 1
    fi
  done
  a="$work/out-a-$name"
  b="$work/out-b-$name"
  names_a=$(cd "$a" && ls -- *.template.json)
  names_b=$(cd "$b" && ls -- *.template.json)
  if [ "$names_a" != "$names_b" ]; then
    echo "stable-ids: $spec gives different stacks: [$names_a] and [$names_b]"
    status=1
    continue
  fi
  for t in $names_a; do
    if cmp -s "$a/$t" "$b/$t"; then
      echo "ok - $spec: $t is identical from both copies"
    else
      echo "not ok - $spec: $t differs between ${copies[0]} and ${copies[1]}:"
      diff "$a/$t" "$b/$t" | head -n 40 || true
      status=1
    fi
  done
done
exit "$status"
