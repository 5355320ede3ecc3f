#!/usr/bin/env bash
# Set up the machine (scripts/bootstrap.sh), then run the test suite. Run as root: the tests
# create namespaces, mounts and cgroups (without root, run the tests of pure code alone:
# .venv/bin/python -m pytest -m unit). Arguments go to pytest, e.g.
#   sudo scripts/test.sh -m limits          # one category (markers: see pyproject.toml)
#   sudo scripts/test.sh -x -k meta         # stop at the first failure, tests matching "meta"
# Without arguments (as CI calls it), on a cgroup v1 machine, the cgroup v2 subset (marker
# cgroup2) then runs again in a cgroup v2 VM, when $CELLBOX_VM_RUNNER names a VM runner
# (run-in-vm; CI's .ci/run sets it). Without one it says that the subset did not run, and why;
# on a cgroup v2 machine the host suite has run on v2 already.
# Exits nonzero if either part fails; "no tests were collected" (pytest's 5) is a failure too.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) != 0 ]]; then
    echo "test: cellbox's tests need root (namespaces, mounts, cgroups); run: sudo $0${*:+ $*}" >&2
    echo "test: without root, the tests of pure code run alone: .venv/bin/python -m pytest -m unit" >&2
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

outcome() {  # exit status -> word
    if [[ $1 == 0 ]]; then echo passed; else echo "FAILED (exit $1)"; fi
}

# "cgroup v1" or "cgroup v2": the backend cellbox uses on this machine.
cgroups=$(.venv/bin/python -m cellbox --print-cg-root | grep -o '^cgroup v[12]' || echo "no cgroup")
rc=0
checked .venv/bin/python -m pytest tests "$@" || rc=$?
if [[ $# != 0 ]]; then
    exit "$rc"
fi
host="test: the host suite ($cgroups): $(outcome "$rc")"
if [[ $cgroups == "cgroup v2" ]]; then
    vm="test: the cgroup v2 subset needs no VM here: the host suite ran on this machine's cgroup v2"
elif [[ -z ${CELLBOX_VM_RUNNER:-} ]]; then
    vm="test: the cgroup v2 subset (marker cgroup2) did not run: this machine has $cgroups and no VM runner is set (CELLBOX_VM_RUNNER=path/to/run-in-vm runs it in a cgroup v2 VM)"
elif [[ ! -f $CELLBOX_VM_RUNNER ]]; then
    vm="test: error: the cgroup v2 subset did not run: CELLBOX_VM_RUNNER=$CELLBOX_VM_RUNNER does not exist"
    rc=1
else
    echo "test: the cgroup v2 subset, in a VM ($CELLBOX_VM_RUNNER; emulated: about half an hour)" >&2
    vm_rc=0
    # python3: CI's copy of the runner has no execute bits. The VM is emulated and slow: the
    # timeout is generous, yet below CI's limit.
    checked python3 "$CELLBOX_VM_RUNNER" --timeout 2700 -- \
        .venv/bin/python -m pytest tests -m cgroup2 -p no:cacheprovider || vm_rc=$?
    vm="test: the cgroup v2 subset (marker cgroup2) in a cgroup v2 VM: $(outcome "$vm_rc")"
    if [[ $vm_rc != 0 ]]; then
        rc=$vm_rc
    fi
fi
echo "$host" >&2
echo "$vm" >&2
exit "$rc"
