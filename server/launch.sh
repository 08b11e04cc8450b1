#!/bin/sh
# Start the incident-response server from an unpacked plugin bundle.
#
# The bundle carries the Python source (plugin/), pyproject.toml and constraints.txt.
# On first start (and whenever those two files change) this creates a virtual
# environment and installs the pinned dependencies into it; the server then runs
# from the bundled source, so the bundle is the single copy of the code.
#
#   INCIDENT_PYTHON      interpreter to build the environment with (default: python3, 3.11+)
#   INCIDENT_VENV        where the environment lives (default: <plugin folder>/.venv)
#   INCIDENT_NO_INSTALL  1: use INCIDENT_VENV as it is (an environment the operator manages)
#   INCIDENT_PIP_ARGS    extra pip arguments, e.g. "--no-index --find-links /srv/wheels" offline
#
# Arguments are passed to `incident-plugin serve` (e.g. --host, --port, --workers).
set -eu

HERE=$(cd "$(dirname "$0")/.." && pwd)
VENV=${INCIDENT_VENV:-$HERE/.venv}
PYTHON=${INCIDENT_PYTHON:-python3}
STAMP=$VENV/.bundle-installed

if [ "${INCIDENT_NO_INSTALL:-0}" != "1" ]; then
  WANT=$(cat "$HERE/pyproject.toml" "$HERE/constraints.txt" | cksum)
  if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    echo "incident-plugin: installing dependencies into $VENV" >&2
    "$PYTHON" -m venv "$VENV"
    # shellcheck disable=SC2086 # INCIDENT_PIP_ARGS is a list of words on purpose
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q ${INCIDENT_PIP_ARGS:-} \
      -c "$HERE/constraints.txt" "$HERE"
    echo "$WANT" > "$STAMP"
  fi
fi

# The bundled source comes first on the path, so it is what runs.
cd "$HERE"
PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}" exec "$VENV/bin/python" -m plugin.cli serve "$@"
