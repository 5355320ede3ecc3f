#!/usr/bin/env bash
# Set up a fresh Debian 12 machine for cellbox, idempotently (run as root):
#   1. apt-get install what is missing: gcc, libseccomp2 (the seccomp filter, through
#      pyseccomp), the toolchains of the shipped languages (each profile's `packages` in
#      cellbox/languages/; CELLBOX_LANGUAGES chooses which, below), bubblewrap and
#      util-linux's unshare (peers in `cellbox bench`), redis-server (the service tests start
#      their own, as the Celery broker), chromium (the playground's headless browser test),
#      and python3 / python3-venv only when no
#      usable Python >= 3.11 or no working venv module is found;
#   2. create .venv with the first python3 on PATH that is >= 3.11, if .venv is absent or broken;
#   3. pip install -e '.[test,bench,service]' when pyproject.toml changed since the last
#      install, in setuptools' "compat" editable mode: a plain path entry in a .pth file, not
#      an import hook, which cost every cellbox command ~20 ms of start-up;
#   4. write .venv/bin/cellbox-cli, the Python CLI's launcher: it starts Python with -I -S (no
#      `site`, no .pth files, no PYTHON* variables) and puts the repository and the venv's
#      site-packages on sys.path itself: `site` alone costs every run several ms; and replace
#      pip's .venv/bin/cellbox with the native front door (cellbox/cli/client.c, static), which
#      hands isolate's grammar to the keeper daemon and execs cellbox-cli for the rest;
#      create the group `cellbox`, whose members root's keeper daemon serves;
#   5. build the box init (cellbox/boxinit/*.c, statically linked: libc6-dev) into
#      /var/cache/cellbox, where cellbox would otherwise build it on its first run;
#   6. when $CELLBOX_VM_RUNNER names a VM runner (CI's .ci/run sets it): its setup (qemu, a
#      Debian kernel, busybox), so that scripts/test.sh can run the cgroup v2 tests in its VM.
# Quiet when there is nothing to do; on a failure it says what failed and shows the log.
#
# CELLBOX_LANGUAGES chooses the language toolchains to install: "all" (the default, a few GB),
# "none", or a comma-separated list of profile names, e.g. CELLBOX_LANGUAGES=c,cpp,python for
# a small machine (cellbox languages lists the names; a language left out is reported as
# unavailable, never run without its toolchain).
set -euo pipefail

# One bootstrap at a time (e.g. demo.sh and test.sh started together): lock this script.
exec 9<"$0"
flock 9

cd "$(dirname "$0")/.."
REPO=$(pwd -P)
VENV="$REPO/.venv"
STAMP="$VENV/.cellbox-bootstrap"  # "<sha256 of pyproject.toml> <repo path>" of the last install
MIN_PY="3.11"

say() { echo "bootstrap: $*" >&2; }
die() { echo "bootstrap: error: $*" >&2; exit 1; }

# Run a noisy command with its output kept in a log, shown only if the command fails.
LOG=$(mktemp /tmp/cellbox-bootstrap.XXXXXX)
trap 'rm -f "$LOG"' EXIT
quietly() {
    local what=$1
    shift
    if ! "$@" >"$LOG" 2>&1; then
        echo "bootstrap: error: $what failed: $*" >&2
        echo "---- last lines of its output ----" >&2
        tail -n 40 "$LOG" >&2
        exit 1
    fi
}

# ---- Python --------------------------------------------------------------------------------

# Print the real interpreter (pyenv shims resolved) if $1 is a Python >= MIN_PY, else fail.
real_python() {
    "$1" -c "import sys; assert sys.version_info >= (${MIN_PY/./, }); print(sys.executable)" \
        2>/dev/null
}

find_python() {
    local candidate real
    # Every python3 on PATH in order (a pyenv shim first, if any), then versioned names.
    while IFS= read -r candidate; do
        if real=$(real_python "$candidate") && [[ -n $real ]]; then
            echo "$real"
            return 0
        fi
    done < <(type -ap python3 python3.13 python3.12 python3.11 2>/dev/null)
    return 1
}

venv_ok() {
    [[ -x $VENV/bin/python ]] && real_python "$VENV/bin/python" >/dev/null
}

PYTHON=""
NEED_VENV=0
if ! venv_ok; then
    NEED_VENV=1
    PYTHON=$(find_python) || PYTHON=""
fi

# ---- system packages -----------------------------------------------------------------------

# "package[:command]": present if dpkg has the package installed (dpkg -s, but also false for a
# removed package whose config files remain), or if the command is on PATH under /usr (e.g. a
# JDK that came from another package than default-jdk-headless; a toolchain under a home
# directory, such as rustup's, is invisible in a box, so it does not count).
REQUIRED=(gcc:gcc libc6-dev libseccomp2 bubblewrap:bwrap util-linux:unshare
          redis-server:redis-server)

# The chosen languages' packages, each with its profile's version command as the fallback.
LANGUAGES=${CELLBOX_LANGUAGES:-all}
KNOWN=()
for profile in cellbox/languages/[!_]*.toml; do
    name=$(sed -n 's/^name = "\(.*\)"$/\1/p' "$profile")
    KNOWN+=("$name")
    [[ $LANGUAGES == all || ",$LANGUAGES," == *",$name,"* ]] || continue
    cmd=$(sed -n 's/^version = \["\([^"]*\)".*/\1/p' "$profile")
    for pkg in $(sed -n 's/^packages = \[\([^]]*\)\].*/\1/p' "$profile" | tr -d '",'); do
        REQUIRED+=("$pkg:$cmd")
    done
done
if [[ $LANGUAGES != all && $LANGUAGES != none ]]; then
    for name in ${LANGUAGES//,/ }; do
        [[ " ${KNOWN[*]} " == *" $name "* ]] || die "CELLBOX_LANGUAGES names an unknown" \
            "language $name; known: all, none, ${KNOWN[*]}"
    done
fi
if [[ $NEED_VENV == 1 ]]; then
    if [[ -z $PYTHON ]]; then
        REQUIRED+=(python3 python3-venv)  # Debian 12's python3 is 3.11
    elif ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
        REQUIRED+=(python3-venv)  # Debian keeps ensurepip (which venv needs) in python3-venv
    fi
fi

MISSING=()
for req in "${REQUIRED[@]}"; do
    pkg=${req%%:*}
    cmd=${req#*:}
    [[ $cmd == "$req" ]] && cmd=""
    if [[ $(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null) == installed ]]; then
        continue
    fi
    if [[ -n $cmd ]] && found=$(command -v "$cmd" 2>/dev/null) &&
        [[ $(readlink -f "$found") == /usr/* ]]; then
        continue
    fi
    MISSING+=("$pkg")
done

if ((${#MISSING[@]})); then
    [[ $(id -u) == 0 ]] || die "packages ${MISSING[*]} are missing and only root can install" \
        "them; run this as root (sudo $0)"
    command -v apt-get >/dev/null || die "packages ${MISSING[*]} are missing and there is no" \
        "apt-get; install them by hand (this script supports Debian 12)"
    # Each package once (languages share some), in the order first named.
    mapfile -t MISSING < <(printf '%s\n' "${MISSING[@]}" | awk '!seen[$0]++')
    say "installing ${MISSING[*]} (apt-get; CELLBOX_LANGUAGES=$LANGUAGES)"
    export DEBIAN_FRONTEND=noninteractive
    quietly "apt-get update" apt-get update -q
    quietly "apt-get install" apt-get install -y -q --no-install-recommends "${MISSING[@]}"
fi

# ---- the virtual environment ---------------------------------------------------------------

if [[ $NEED_VENV == 1 ]]; then
    [[ -n $PYTHON ]] || PYTHON=$(find_python) ||
        die "no Python >= $MIN_PY on PATH ($PATH); install one (apt-get install python3)"
    if [[ -e $VENV ]]; then
        say "$VENV is broken (no working Python >= $MIN_PY in it); recreating it"
        rm -rf "$VENV"
    fi
    say "creating .venv with $PYTHON ($("$PYTHON" -c 'import platform; print(platform.python_version())'))"
    quietly "creating the virtual environment" "$PYTHON" -m venv "$VENV"
fi

WANT="$(sha256sum pyproject.toml | cut -d' ' -f1) $REPO compat"
if [[ ! -f $STAMP || $(cat "$STAMP") != "$WANT" ]] ||
    ! "$VENV/bin/python" -c 'import cellbox, pytest, pyseccomp, fastapi, celery' 2>/dev/null; then
    say "installing cellbox, its test, benchmark and service tools into .venv" \
        "(pip install -e '.[test,bench,service]')"
    quietly "pip install" "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        --config-settings editable_mode=compat -e ".[test,bench,service]"
    echo "$WANT" >"$STAMP"
fi

# ---- the box init ----------------------------------------------------------------------------

quietly "building the box init (cellbox/boxinit/)" \
    env PYTHONPATH="$REPO" "$VENV/bin/python" -I -c 'from cellbox.boxinit import binary; binary()'

# ---- the cgroup v2 VM (scripts/test.sh) ------------------------------------------------------

# Called through python3: CI's copy of the runner has no execute bits. Its setup is idempotent.
if [[ -n ${CELLBOX_VM_RUNNER:-} && -f $CELLBOX_VM_RUNNER ]]; then
    quietly "the cgroup v2 VM's setup" python3 "$CELLBOX_VM_RUNNER" --setup
fi

# ---- the fast launcher -----------------------------------------------------------------------

SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
LAUNCHER="#!$VENV/bin/python -IS
# cellbox's launcher, written by scripts/bootstrap.sh: -I -S skips site and its .pth files.
import sys
sys.path += [\"$REPO\", \"$SITE\"]  # after the standard library, as site would
from cellbox.cli.main import main
# The service's worker processes import this file again (multiprocessing): only run here.
if __name__ == \"__main__\":
    main()"
if [[ $(cat "$VENV/bin/cellbox-cli" 2>/dev/null) != "$LAUNCHER" ]]; then
    printf '%s\n' "$LAUNCHER" >"$VENV/bin/cellbox-cli.new"
    chmod 755 "$VENV/bin/cellbox-cli.new"
    mv "$VENV/bin/cellbox-cli.new" "$VENV/bin/cellbox-cli"
fi

# ---- the native front door -------------------------------------------------------------------

CLIENT="$VENV/bin/cellbox"
if [[ $(head -c4 "$CLIENT" 2>/dev/null) != $'\x7fELF' || cellbox/cli/client.c -nt $CLIENT ]]; then
    quietly "building the cellbox command (cellbox/cli/client.c)" \
        gcc -O2 -Wall -Wextra -Werror -static -o "$CLIENT.new" cellbox/cli/client.c
    mv "$CLIENT.new" "$CLIENT"
fi
getent group cellbox >/dev/null || quietly "creating the group cellbox" groupadd --system cellbox

