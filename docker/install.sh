#!/bin/sh
# The image's install steps, also run by tests/integration/test_docker_install.py in a fresh
# virtualenv: `install.sh deps` installs the dependencies named in pyproject.toml (a layer that
# changes only with them), `install.sh app` the project itself, from the current directory.
# Into $VIRTUAL_ENV (created when missing).
set -eu
: "${VIRTUAL_ENV:?set VIRTUAL_ENV to the virtualenv to install into}"
[ -x "$VIRTUAL_ENV/bin/python" ] || python3 -m venv "$VIRTUAL_ENV"
py="$VIRTUAL_ENV/bin/python"

case "${1:-}" in
  deps)
    "$py" - <<'PY' >"$VIRTUAL_ENV/requirements.txt"
import tomllib

with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["dependencies"]))
PY
    "$py" -m pip install --quiet --requirement "$VIRTUAL_ENV/requirements.txt"
    ;;
  app)
    "$py" -m pip install --quiet --no-deps .
    "$py" -m pip check
    ;;
  *)
    echo "usage: $0 deps|app" >&2
    exit 2
    ;;
esac
