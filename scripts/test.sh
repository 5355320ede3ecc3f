#!/usr/bin/env bash
# Set up the machine (scripts/bootstrap.sh), then run the test suite. Run as root: the tests
# create namespaces, mounts and cgroups. Arguments go to pytest, e.g.
#   sudo scripts/test.sh -m limits          # one category (markers: see pyproject.toml)
#   sudo scripts/test.sh -x -k meta         # stop at the first failure, tests matching "meta"
# Without arguments (as CI calls it), the cgroup subset (marker cgroup2) then runs again in a
# cgroup v2 VM (../shared/vm/run-in-vm), since this machine mounts cgroup v1.
# Exits nonzero if either part fails; "no tests were collected" (pytest's 5) is a failure too.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) != 0 ]]; then
    echo "test: cellbox's tests need root (namespaces, mounts, cgroups); run: sudo $0${*:+ $*}" >&2
    exit 1
fi
scripts/bootstrap.sh

# pytest's exit status, with 5 (nothing collected) turned into a failure.
checked() {
    local rc=0
    "$@" || rc=$?
    if [[ $rc == 5 ]]; then
        echo "test: error: pytest collected no tests (exit 5); treating that as a failure" >&2
        rc=1
    fi
    return "$rc"
}

rc=0
checked .venv/bin/python -m pytest tests "$@" || rc=$?
if [[ $# == 0 ]]; then
    RUN_IN_VM=../shared/vm/run-in-vm
    if [[ ! -f $RUN_IN_VM ]]; then
        echo "test: error: $RUN_IN_VM is missing: cannot run the cgroup v2 tests" >&2
        exit 1
    fi
    echo "test: the cgroup v2 subset, in a VM (emulated: a few minutes)" >&2
    vm_rc=0
    # python3: CI's copy of shared/ has no execute bits. The VM is emulated and slow: the
    # timeout is generous, yet far below CI's limit.
    checked python3 "$RUN_IN_VM" --timeout 900 -- \
        .venv/bin/python -m pytest tests -m cgroup2 -p no:cacheprovider || vm_rc=$?
    if [[ $vm_rc != 0 ]]; then
        echo "test: error: the cgroup v2 subset failed in the VM (exit $vm_rc)" >&2
        rc=$vm_rc
    fi
fi
exit "$rc"
