#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions are called indirectly (trap, run_stage "$@")
# Switchboard's full test run: lint, Rust build and tests, then end-to-end tests with the stock QuickBlox
# JS SDK (tests/sdk). Installs what is missing first. Idempotent; runs from any directory.
#
#   bash scripts/test.sh            # everything
#   FAIL_FAST=1 bash scripts/test.sh  # stop at the first failing stage
#
# Env: CI=true (nothing may be skipped: a missing prerequisite is a failure), CARGO_TARGET_DIR,
#      SWITCHBOARD_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/test), FAIL_FAST=1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

IS_CI=false
case "${CI:-}" in true | TRUE | 1 | yes) IS_CI=true ;; esac
FAIL_FAST="${FAIL_FAST:-}"

# Debian packages the suites need. nodejs/npm are checked by command (the machine's Node may not come
# from Debian's own packages); chromium is for the browser suites.
# coturn brings turnutils_uclient/turnutils_peer for the TURN real-client tests (its server is never started).
APT_PACKAGES=(postgresql chromium coturn)
PG_PORT=5432
export SWITCHBOARD_TEST_PG_URL="${SWITCHBOARD_TEST_PG_URL:-postgres://postgres@127.0.0.1:${PG_PORT}/test}"

LOG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/switchboard-test.XXXXXX")"
SUMMARY=()
FAILED=0
START=$SECONDS

log() { printf '\n==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }

# Repeats why each test failed next to the summary: CI keeps only the tail of a long log, and a
# node suite whose `before` hook failed shows its error only after its cancelled subtests.
print_failure_digest() {
  local digest
  digest="$(
    if [[ -f "$LOG_DIR/cargo-test.log" ]]; then
      # "---- name stdout ----", then the panic line and its message up to the backtrace note.
      awk '/^---- .* stdout ----$/ { name = $2; n = 0; next }
           name != "" && /panicked at/ { print "cargo test " name ": " $0; n = 6; next }
           /^note: run with|^failures:$/ { n = 0 }
           n > 0 && NF { print "    " $0; n-- }' "$LOG_DIR/cargo-test.log"
    fi
    local nlog
    for nlog in "$LOG_DIR/node-test.log" "$LOG_DIR/node-browser.log"; do
      [[ -f "$nlog" ]] || continue
      # A TAP "not ok" line, then its YAML block ("---" to "..."): keep the failure type, the
      # error (with its continuation lines) and expected/actual. Subtests cancelled because
      # their suite failed, and suites that failed only through a subtest, add nothing.
      awk '/^ *not ok / { title = $0; sub(/^ */, "", title); block = ""; inblock = 1; skip = 0; lines = 0; keep = 0; next }
           !inblock { next }
           /^ *---$/ { match($0, /^ */); indent = RLENGTH; next }
           /^ *\.\.\.$/ { if (!skip) { print "node: " title; printf "%s", block } inblock = 0; next }
           /failureType: .(cancelledByParent|subtestsFailed)./ { skip = 1 }
           { match($0, /^ */); deeper = RLENGTH > indent }
           !deeper { keep = ($0 ~ /^ *(failureType|error|expected|actual):/) }
           keep && lines < 12 { line = $0; sub(/^ */, "", line); block = block "    " substr(line, 1, 300) "\n"; lines++ }' "$nlog"
    done
    if [[ -f "$LOG_DIR/pytest.log" ]]; then
      grep -E '^(FAILED|ERROR) ' "$LOG_DIR/pytest.log" | sed 's/^/pytest: /'
    fi
    true # an empty digest is not an error (this runs in the EXIT trap, under set -e)
  )"
  [[ -n "$digest" ]] || return 0
  echo
  echo "==================== why tests failed (first lines) ===================="
  head -n 80 <<<"$digest"
}

print_summary() {
  local rc=$?
  local passed=0 failed=0 skipped=0 n
  # cargo test: "test result: ok. 12 passed; 0 failed; 1 ignored; ..."
  if [[ -f "$LOG_DIR/cargo-test.log" ]]; then
    while read -r n; do passed=$((passed + n)); done < <(sed -nE 's/^test result: .* ([0-9]+) passed;.*/\1/p' "$LOG_DIR/cargo-test.log")
    while read -r n; do failed=$((failed + n)); done < <(sed -nE 's/^test result: .*; ([0-9]+) failed;.*/\1/p' "$LOG_DIR/cargo-test.log")
    while read -r n; do skipped=$((skipped + n)); done < <(sed -nE 's/^test result: .*; ([0-9]+) ignored;.*/\1/p' "$LOG_DIR/cargo-test.log")
  fi
  # node --test (TAP "# pass 3" or spec "ℹ pass 3")
  local nlog
  for nlog in "$LOG_DIR/node-test.log" "$LOG_DIR/node-browser.log"; do
    [[ -f "$nlog" ]] || continue
    while read -r n; do passed=$((passed + n)); done < <(sed -nE 's/^(# |ℹ )pass ([0-9]+)$/\2/p' "$nlog")
    while read -r n; do failed=$((failed + n)); done < <(sed -nE 's/^(# |ℹ )(fail|cancelled) ([0-9]+)$/\3/p' "$nlog")
    while read -r n; do skipped=$((skipped + n)); done < <(sed -nE 's/^(# |ℹ )(skipped|todo) ([0-9]+)$/\3/p' "$nlog")
  done
  # pytest: "3 passed, 1 failed, 2 skipped in 4.2s"
  if [[ -f "$LOG_DIR/pytest.log" ]]; then
    local last
    last="$(grep -E '[0-9]+ (passed|failed|skipped|error)' "$LOG_DIR/pytest.log" | tail -1)"
    local word
    for word in passed failed error errors skipped; do
      n="$(grep -oE "[0-9]+ $word\b" <<<"$last" | grep -oE '[0-9]+' || true)"
      case "$word" in
        passed) passed=$((passed + ${n:-0})) ;;
        skipped) skipped=$((skipped + ${n:-0})) ;;
        *) failed=$((failed + ${n:-0})) ;;
      esac
    done
  fi
  print_failure_digest
  rm -rf "$LOG_DIR"
  echo
  echo "==================== Switchboard test summary ===================="
  local line
  for line in "${SUMMARY[@]}"; do echo "  $line"; done
  if [[ $rc -ne 0 && $FAILED -eq 0 ]]; then
    echo "  ABORTED  (exit $rc during setup; see the output above)"
  fi
  echo "  time: $((SECONDS - START))s   CI: $IS_CI"
  if [[ $rc -ne 0 || $FAILED -ne 0 ]]; then
    echo "RESULT: FAILED"
  else
    echo "RESULT: OK"
  fi
  echo "tests: $passed passed, $failed failed, $skipped skipped"
  if [[ $rc -eq 0 && $FAILED -ne 0 ]]; then exit 1; fi
}
trap print_summary EXIT

# A prerequisite is missing: fatal in CI, a recorded skip locally.
missing() {
  if $IS_CI; then
    echo "ERROR: $* (CI=true: nothing may be skipped)" >&2
    SUMMARY+=("FAIL  setup: $*")
    FAILED=1
    exit 1
  fi
  warn "$* (skipping what needs it; in CI this is a failure)"
  SUMMARY+=("SKIP  setup: $*")
}

# run_stage NAME CMD...: runs CMD, records PASS/FAIL. Returns CMD's status.
run_stage() {
  local name=$1 t0=$SECONDS rc=0
  shift
  log "$name: $*"
  "$@" || rc=$?
  if [[ $rc -eq 0 ]]; then
    SUMMARY+=("PASS  $name ($((SECONDS - t0))s)")
  else
    SUMMARY+=("FAIL  $name (exit $rc, $((SECONDS - t0))s)")
    FAILED=1
    if [[ -n "$FAIL_FAST" ]]; then exit "$rc"; fi
  fi
  return "$rc"
}

skip_stage() {
  local name=$1 why=$2
  if $IS_CI; then
    SUMMARY+=("FAIL  $name (not run: $why)")
    FAILED=1
  else
    SUMMARY+=("SKIP  $name ($why)")
  fi
}

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    return 1
  fi
}

# ---------------------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------------------

dpkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

ensure_system_packages() {
  local want=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg_installed "$p" || want+=("$p")
  done
  command -v node >/dev/null || want+=(nodejs)
  command -v npm >/dev/null || want+=(npm)
  if ! command -v psql >/dev/null || ! compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null; then
    dpkg_installed postgresql || [[ " ${want[*]} " == *" postgresql "* ]] || want+=(postgresql)
  fi
  if [[ ${#want[@]} -eq 0 ]]; then
    echo "system packages: all present"
    return 0
  fi
  log "installing Debian packages: ${want[*]}"
  if as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${want[@]}"; then
    SUMMARY+=("PASS  setup: apt-get install ${want[*]}")
  else
    missing "could not install Debian packages: ${want[*]}"
  fi
}

pg_accepting() {
  if command -v pg_isready >/dev/null; then
    pg_isready -q -h 127.0.0.1 -p "$PG_PORT"
  else
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1
  fi
}

# pg_clusters ACTION: pg_ctlcluster ACTION for every installed version's "main" cluster.
pg_clusters() {
  local conf
  for conf in /etc/postgresql/*/main; do
    [[ -d "$conf" ]] || continue
    conf="${conf%/main}"
    as_root pg_ctlcluster --skip-systemctl-redirect "${conf##*/}" main "$1" || true
  done
}

ensure_postgres() {
  if ! command -v pg_ctlcluster >/dev/null || [[ ! -d /etc/postgresql ]]; then
    missing "PostgreSQL is not installed"
    unset SWITCHBOARD_TEST_PG_URL
    return 0
  fi
  if ! pg_accepting; then
    log "starting PostgreSQL"
    pg_clusters start
    local tries=60
    while ! pg_accepting && ((tries-- > 0)); do sleep 0.5; done
    if ! pg_accepting; then
      missing "PostgreSQL is not accepting connections on 127.0.0.1:$PG_PORT"
      unset SWITCHBOARD_TEST_PG_URL
      return 0
    fi
  fi
  # The tests connect as postgres without a password to the database "test" (the machine's default setup).
  if ! psql "$SWITCHBOARD_TEST_PG_URL" -Atqc 'select 1' >/dev/null 2>&1; then
    local db="${SWITCHBOARD_TEST_PG_URL##*/}"
    db="${db%%\?*}"
    log "preparing PostgreSQL for tests (database $db, trust auth on loopback)"
    if ! as_root runuser -u postgres -- psql -Atqc "select 1 from pg_database where datname = '$db'" | grep -q 1; then
      as_root runuser -u postgres -- createdb "$db" || true
    fi
    if ! psql "$SWITCHBOARD_TEST_PG_URL" -Atqc 'select 1' >/dev/null 2>&1; then
      # A freshly installed Debian cluster asks for passwords over TCP: trust loopback (test machines only).
      local hba
      for hba in /etc/postgresql/*/main/pg_hba.conf; do
        grep -q '# switchboard-test' "$hba" && continue
        as_root sed -i '1i host all all 127.0.0.1/32 trust # switchboard-test\nhost all all ::1/128 trust # switchboard-test' "$hba"
      done
      pg_clusters reload
    fi
  fi
  if psql "$SWITCHBOARD_TEST_PG_URL" -Atqc 'select 1' >/dev/null 2>&1; then
    echo "PostgreSQL: $SWITCHBOARD_TEST_PG_URL is reachable"
  else
    missing "cannot connect to $SWITCHBOARD_TEST_PG_URL"
    unset SWITCHBOARD_TEST_PG_URL
  fi
}

# Installs DIR/node_modules (default tests/sdk) when missing or stale (package.json / package-lock.json changed).
ensure_node_modules() {
  local dir="$ROOT/${1:-tests/sdk}" stamp want have=""
  stamp="$dir/node_modules/.switchboard-stamp"
  want="$(cat "$dir/package.json" "$dir/package-lock.json" 2>/dev/null | sha256sum | cut -d' ' -f1)-$(node --version)"
  [[ -f "$stamp" ]] && have="$(cat "$stamp")"
  if [[ -d "$dir/node_modules" && "$have" == "$want" ]]; then
    echo "${dir#"$ROOT"/}/node_modules: up to date"
    return 0
  fi
  # (No set -e here: run_stage calls this in a condition. Every failure returns explicitly.)
  if [[ -f "$dir/package-lock.json" ]]; then
    (cd "$dir" && npm ci --no-audit --no-fund) || return 1
  else
    (cd "$dir" && npm install --no-audit --no-fund) || return 1
  fi
  echo "$want" >"$stamp" || return 1
}

# Installs slixmpp and pytest into tests/slixmpp/.venv when missing or stale (requirements.txt changed).
ensure_python_venv() {
  local dir="$ROOT/tests/slixmpp" stamp want have=""
  stamp="$dir/.venv/.switchboard-stamp"
  want="$(sha256sum "$dir/requirements.txt" | cut -d' ' -f1)-$(python3 --version 2>&1)"
  [[ -f "$stamp" ]] && have="$(cat "$stamp")"
  if [[ -x "$dir/.venv/bin/python" && "$have" == "$want" ]]; then
    echo "tests/slixmpp/.venv: up to date"
    return 0
  fi
  rm -rf "$dir/.venv"
  python3 -m venv "$dir/.venv" || return 1
  "$dir/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$dir/requirements.txt" || return 1
  echo "$want" >"$stamp" || return 1
}

slixmpp_tests() {
  tests/slixmpp/.venv/bin/python -m pytest -q -p no:cacheprovider tests/slixmpp 2>&1 | tee "$LOG_DIR/pytest.log"
}

# Test stages whose output is kept (tee) for the closing count. pipefail is on, so they return the
# runner's status.
cargo_test() { cargo test --workspace 2>&1 | tee "$LOG_DIR/cargo-test.log"; }
sdk_tests() {
  echo "SWITCHBOARD_BIN=$SWITCHBOARD_BIN"
  node --test --test-timeout=600000 tests/sdk/ 2>&1 | tee "$LOG_DIR/node-test.log"
}
# Headless Debian Chromium (tests/browser): SFU conferences through the Janus API, WebRTC calls.
browser_tests() {
  node --test --test-timeout=600000 tests/browser/ 2>&1 | tee "$LOG_DIR/node-browser.log"
}

# ---------------------------------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------------------------------

if ! command -v cargo >/dev/null && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null || {
  SUMMARY+=("FAIL  setup: cargo not found")
  FAILED=1
  exit 1
}
echo "Switchboard tests in $ROOT ($(cargo --version), node $(node --version 2>/dev/null || echo missing), CI=$IS_CI)"

# Fast checks first.
run_stage "cargo fmt --check" cargo fmt --all --check || true
run_stage "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings || true

log "setup"
ensure_system_packages
ensure_postgres

BUILD_OK=false
run_stage "cargo build" cargo build --workspace --all-targets && BUILD_OK=true

if $BUILD_OK; then
  run_stage "cargo test" cargo_test || true
else
  skip_stage "cargo test" "build failed"
fi

TARGET_DIR="${CARGO_TARGET_DIR:-}"
if [[ -z "$TARGET_DIR" ]]; then
  TARGET_DIR="$(cargo metadata --no-deps --format-version 1 |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).target_directory))' ||
    echo "$ROOT/target")"
fi
[[ "$TARGET_DIR" == /* ]] || TARGET_DIR="$ROOT/$TARGET_DIR"
export SWITCHBOARD_BIN="$TARGET_DIR/debug/switchboard" # the binary just built, whatever the caller had

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing "node/npm not available"
  skip_stage "SDK tests (node --test tests/sdk/)" "node/npm missing"
elif ! $BUILD_OK; then
  skip_stage "SDK tests (node --test tests/sdk/)" "build failed"
elif ! run_stage "npm ci (tests/sdk)" ensure_node_modules; then
  skip_stage "SDK tests (node --test tests/sdk/)" "npm install failed"
else
  run_stage "SDK tests (node --test tests/sdk/)" sdk_tests || true
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  skip_stage "browser tests (node --test tests/browser/)" "node/npm missing"
elif ! $BUILD_OK; then
  skip_stage "browser tests (node --test tests/browser/)" "build failed"
elif [[ ! -x /usr/bin/chromium ]]; then
  missing "Debian chromium (/usr/bin/chromium) not installed"
  skip_stage "browser tests (node --test tests/browser/)" "chromium missing"
elif ! run_stage "npm ci (tests/browser)" ensure_node_modules tests/browser; then
  skip_stage "browser tests (node --test tests/browser/)" "npm install failed"
else
  run_stage "browser tests (node --test tests/browser/)" browser_tests || true
fi

if ! command -v python3 >/dev/null; then
  missing "python3 not available"
  skip_stage "slixmpp tests (pytest tests/slixmpp)" "python3 missing"
elif ! $BUILD_OK; then
  skip_stage "slixmpp tests (pytest tests/slixmpp)" "build failed"
elif ! run_stage "pip install (tests/slixmpp)" ensure_python_venv; then
  skip_stage "slixmpp tests (pytest tests/slixmpp)" "pip install failed"
else
  run_stage "slixmpp tests (pytest tests/slixmpp)" slixmpp_tests || true
fi

exit 0 # the EXIT trap prints the summary and turns a failed stage into exit 1
