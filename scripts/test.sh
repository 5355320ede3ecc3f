#!/usr/bin/env bash
# Set up the machine (scripts/bootstrap.sh), then run the test suite. Run as root: the tests
# create namespaces, mounts and cgroups. Arguments go to pytest, e.g.
#   sudo scripts/test.sh -m limits          # one category (markers: see pyproject.toml)
#   sudo scripts/test.sh -x -k meta         # stop at the first failure, tests matching "meta"
# Exits with pytest's code, except that "no tests were collected" (5) is a failure too.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) != 0 ]]; then
    echo "test: cellbox's tests need root (namespaces, mounts, cgroups); run: sudo $0${*:+ $*}" >&2
    exit 1
fi
scripts/bootstrap.sh
rc=0
.venv/bin/python -m pytest tests "$@" || rc=$?
if [[ $rc == 5 ]]; then
    echo "test: error: pytest collected no tests (exit 5); treating that as a failure" >&2
    exit 1
fi
exit "$rc"
