#!/usr/bin/env bash
# Build .venv-iac, the scanners' own environment (checkov, hadolint, shellcheck),
# from requirements-iac.lock. Kept apart from .venv because checkov pins versions
# that conflict with requirements.lock. Idempotent: does nothing when the venv
# matches the lock already.
#
#   infra/iac_venv.sh            # uses python3.11, or python3
#   PYTHON=python3.12 infra/iac_venv.sh
set -euo pipefail

cd "$(dirname "$0")/.."
venv=.venv-iac
lock=requirements-iac.lock
stamp="$venv/.installed"
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"

if [[ -f "$stamp" && "$stamp" -nt "$lock" ]]; then
  exit 0
fi
if [[ ! -x "$venv/bin/python" ]]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$lock"
touch "$stamp"
echo "$venv ready: $("$venv/bin/checkov" --version 2>/dev/null | head -n 1) checkov," \
  "$("$venv/bin/hadolint" --version), $("$venv/bin/shellcheck" --version | sed -n 2p)"
