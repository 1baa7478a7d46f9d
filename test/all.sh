#!/usr/bin/env bash
# Every check of the project, in the order a failure is cheapest to read: linters, unit tests
# (TypeScript, Python), then synth + cdk-nag + cfn-lint of every example spec, then the stable-ids check.
# Each suite's pass/fail counts are added up and the last line is the plain summary
# "N passed, N failed". Exit status: 0 only when nothing failed and every suite ran tests.
#
# Usage: npm test            (after npm ci; the Python venv is created or refreshed here)
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo" || exit 1
out="$repo/test-output"
rm -rf "$out"
mkdir -p "$out"
export CDK_DISABLE_CLI_TELEMETRY=true

passed=0
failed=0
failures=()

# record NAME PASSED FAILED: adds one suite's counts to the totals.
record() {
  passed=$((passed + $2))
  failed=$((failed + $3))
  if [ "$3" -gt 0 ]; then failures+=("$1 ($3 failed)"); fi
  printf '== %s: %d passed, %d failed\n' "$1" "$2" "$3"
}

# check NAME CMD...: a check that passes or fails as a whole (a linter, a synth); its output is
# kept in test-output/NAME.log and shown only when it fails.
check() {
  local name=$1
  shift
  if "$@" >"$out/$name.log" 2>&1; then
    record "$name" 1 0
  else
    cat "$out/$name.log"
    record "$name" 0 1
  fi
}

# --- setup: the Python venv and the Debian tools the checks use
if ! bash training/setup-venv.sh; then
  echo "test: could not set up the Python venv (see above)." >&2
  record "setup-venv" 0 1
fi
# Debian tools the checks use: shellcheck (bash linter) and Chromium (renders report.html headless).
missing=()
command -v shellcheck >/dev/null 2>&1 || missing+=(shellcheck)
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test: installing ${missing[*]} (Debian packages)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >"$out/apt.log" 2>&1 ||
      cat "$out/apt.log"
  else
    echo "test: missing ${missing[*]}; install them (Debian/Ubuntu: sudo apt-get install ${missing[*]})." >&2
  fi
fi
py="$repo/.venv/bin/python"

# --- linters
check typecheck npx --no-install tsc --noEmit -p tsconfig.json
check ruff-check "$py" -m ruff check training
check ruff-format "$py" -m ruff format --check training
mapfile -t shell_scripts < <(git ls-files --cached --others --exclude-standard '*.sh' .ci/run)
check shellcheck shellcheck "${shell_scripts[@]}"

# --- TypeScript unit tests (jest): counts from its JSON report
npx --no-install jest --ci --json --outputFile="$out/jest.json" >"$out/jest.log" 2>&1
jest_rc=$?
if [ -s "$out/jest.json" ]; then
  read -r jp jf < <(node -e 'const r=require(process.argv[1]);
    console.log(r.numPassedTests, r.numFailedTests + r.numRuntimeErrorTestSuites)' "$out/jest.json")
  [ "$jest_rc" -ne 0 ] && [ "$jf" -eq 0 ] && jf=1
  [ "$jp" -eq 0 ] && [ "$jf" -eq 0 ] && jf=1   # no test ran: that is a failure, not a pass
  [ "$jf" -gt 0 ] && cat "$out/jest.log"
  record jest "$jp" "$jf"
else
  cat "$out/jest.log"
  record jest 0 1
fi

# --- Python tests (pytest): counts from its JUnit report; exit 5 (no tests collected) is a failure
(cd training && "$py" -m pytest -q -p no:cacheprovider --junitxml="$out/pytest.xml") 2>&1 | tee "$out/pytest.log" | tail -n 25
pytest_rc=${PIPESTATUS[0]}
if [ -s "$out/pytest.xml" ]; then
  read -r pp pf < <("$py" - "$out/pytest.xml" <<'PY'
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
total = sum(int(s.get("tests", 0)) for s in suites)
bad = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
skipped = sum(int(s.get("skipped", 0)) for s in suites)
print(total - bad - skipped, bad)
PY
)
  [ "$pytest_rc" -ne 0 ] && [ "$pf" -eq 0 ] && pf=1
  [ "$pp" -eq 0 ] && [ "$pf" -eq 0 ] && pf=1
  record pytest "$pp" "$pf"
else
  record pytest 0 1
fi

# --- deploy/destroy smoke test against the moto AWS emulator (prints its own "N passed, N failed")
npx --no-install tsx test/smoke/moto-deploy.ts >"$out/smoke.log" 2>&1
smoke_rc=$?
smoke_counts=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out/smoke.log" | tail -n 1)
if [ -n "$smoke_counts" ]; then
  read -r sp _ sf _ <<<"${smoke_counts//,/}"
  [ "$smoke_rc" -ne 0 ] && [ "$sf" -eq 0 ] && sf=1
  [ "$sf" -gt 0 ] && cat "$out/smoke.log"
  record moto-smoke "$sp" "$sf"
else
  cat "$out/smoke.log"
  record moto-smoke 0 1
fi

# --- every example spec: synth (runs cdk-nag; an unacknowledged finding fails synth), then cfn-lint
for spec in sweeps/*.json; do
  name=$(basename "$spec" .json)
  check "synth-$name" npx --no-install cdk synth --quiet -c "sweep=$spec" -o "$out/cdk.out-$name"
  templates=("$out/cdk.out-$name"/*.template.json)
  if [ -e "${templates[0]}" ]; then
    # W3005 (an explicit DependsOn next to a reference) is how CDK orders every Lambda after its
    # role's policy; it is redundant, not wrong. Everything else, warnings included, fails the check.
    check "cfn-lint-$name" cfn-lint --ignore-checks W3005 -- "${templates[@]}"
  else
    record "cfn-lint-$name" 0 1
  fi
done

# --- stable ids: the same spec from two copies of the checkout in other directories gives identical templates
check stable-ids bash test/stable-ids.sh

echo
if [ "${#failures[@]}" -gt 0 ]; then
  echo "Failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
