#!/usr/bin/env bash
# Runs every check and test of kehai, on a fresh machine too: installs what is missing, starts
# the services the tests need, then formatting, lints and all tests (cargo-nextest).
#
#   bash scripts/test.sh
#
# With CI=true a missing service is a failure, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=""
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
}

# --- tools -------------------------------------------------------------------------------------
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    log "installing $component"
    rustup component add "$component"
  fi
done
if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install cargo-nextest --locked
fi
apt_install postgresql nats-server
# Headless Chromium for the browser tests (driven through chromedriver), with emoji and
# Japanese fonts so that their screenshots show what people see.
apt_install chromium chromium-driver fonts-noto-color-emoji fonts-noto-cjk

# --- services ----------------------------------------------------------------------------------
export KEHAI_TEST_POSTGRES_URL="${KEHAI_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  log "starting PostgreSQL"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
# The store contract creates one database per test through this URL. A fresh PostgreSQL
# install asks for a password on 127.0.0.1 and has no `test` database: give the tests a role
# of their own then.
pg_ok() { psql "$KEHAI_TEST_POSTGRES_URL" -qtAc 'SELECT 1' >/dev/null 2>&1; }
if ! pg_ok && [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432; then
  log "creating the PostgreSQL role kehai_test for the tests"
  su postgres -c "psql -qc \"DO \\\$\\\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'kehai_test') THEN CREATE ROLE kehai_test LOGIN SUPERUSER PASSWORD 'kehai_test'; END IF; END \\\$\\\$\"" >/dev/null
  su postgres -c "createdb -O kehai_test kehai_test" >/dev/null 2>&1 || true
  export KEHAI_TEST_POSTGRES_URL=postgres://kehai_test:kehai_test@127.0.0.1:5432/kehai_test
fi
if pg_ok; then
  :
elif [ "${CI:-}" = "true" ]; then
  echo "PostgreSQL is not reachable at $KEHAI_TEST_POSTGRES_URL and CI=true: failing instead of skipping"; exit 1
else
  echo "warning: PostgreSQL is not running: its half of the store contract will be skipped"
  unset KEHAI_TEST_POSTGRES_URL
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  log "starting NATS"
  as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log || true
  for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break; sleep 0.2; done
fi
# The bus tests and the several-instances test use it (with CI=true, a NATS that does not
# answer fails them).
export KEHAI_TEST_NATS_URL="${KEHAI_TEST_NATS_URL:-nats://127.0.0.1:4222}"

# --- Microsoft's and Google's client libraries, which check msemu and googleemu ---------------
# (one venv inside target/, so that a clean clone starts afresh and nothing leaks elsewhere; it
# is made again when either requirements file changes)
venv=target/conformance-venv
requirements=(crates/msemu/conformance/requirements.txt crates/googleemu/conformance/requirements.txt)
if [ ! -x "$venv/bin/python" ] || ! cat "${requirements[@]}" | cmp -s - "$venv/requirements.txt"; then
  log "installing the Python conformance packages"
  command -v python3 >/dev/null || apt_install python3
  python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$venv"; }
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "${requirements[0]}" -r "${requirements[1]}"
  cat "${requirements[@]}" > "$venv/requirements.txt"
fi
export MSEMU_TEST_PYTHON="$PWD/$venv/bin/python"
export GOOGLEEMU_TEST_PYTHON="$PWD/$venv/bin/python"

# --- checks and tests --------------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "tests"
cargo nextest run --workspace --locked --no-fail-fast
log "fuzzing (about a minute per target)"
bash scripts/fuzz.sh
