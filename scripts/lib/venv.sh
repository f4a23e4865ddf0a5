# ensure_venv [dev]: .venv with the project installed (editable), dev extras when asked.
# Installs only when pyproject.toml changed since the last install, and one caller at a time:
# the test suite runs scripts (demo, bench, example) from parallel workers.
ensure_venv() {
  local want=${1:-}
  local python=${PYTHON:-python3}
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "binlog-tailer needs Python >= 3.11 ($python is $("$python" -V 2>&1))"
  local lock="$BT_ROOT/.venv.lock"
  exec 9>"$lock"
  flock 9
  if [ ! -x "$BT_ROOT/.venv/bin/python" ]; then
    "$python" -m venv "$BT_ROOT/.venv" || die "could not create .venv (Debian: apt-get install python3-venv)"
    "$BT_ROOT/.venv/bin/python" -m pip install -q --upgrade pip
  fi
  local hash stamp
  hash=$(sha256sum "$BT_ROOT/pyproject.toml" | cut -c1-16)
  stamp="$BT_ROOT/.venv/.installed-dev-$hash"
  [ "$want" = dev ] || [ -f "$stamp" ] || stamp="$BT_ROOT/.venv/.installed-$hash"
  if [ ! -f "$stamp" ]; then
    local target="$BT_ROOT"
    [ "$want" = dev ] && target="$BT_ROOT[dev]"
    "$BT_ROOT/.venv/bin/python" -m pip install -q -e "$target" >"$BT_ROOT/.venv/install.log" 2>&1 ||
      { cat "$BT_ROOT/.venv/install.log" >&2; die "installing the project into .venv failed"; }
    touch "$stamp"
  fi
  flock -u 9
  exec 9>&-
}
