"""The docs cannot drift: every relative link in README.md and docs/ resolves (file and
anchor), and every cellbox command in a shell code block parses with the real parsers."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from cellbox.cli import options, subcommands
from cellbox.config import load_config
from cellbox.errors import CellboxError

pytestmark = pytest.mark.operations

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", ROOT / "benchmarks" / "README.md",
         *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([a-z]*)\n(.*?)^```$", re.M | re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SHELLS = {"sh", "bash", "shell", "console"}
OPERATORS = {"|", "||", "&", "&&", ";", ";;", "(", ")", "<", ">", ">>", "<<"}


def _prose(text: str) -> str:
    """The page without its code blocks and inline code (no links live there)."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {_slug(h) for h in re.findall(r"^#+ (.*)$", text, re.M)}


def _links() -> list[tuple[Path, str]]:
    return [(page, target) for page in PAGES for target in LINK.findall(_prose(page.read_text()))
            if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize(("page", "target"), _links(),
                         ids=lambda v: v.name if isinstance(v, Path) else v)
@pytest.mark.unit
def test_relative_link_resolves(page: Path, target: str) -> None:
    path, _, anchor = target.partition("#")
    dest = (page.parent / path).resolve() if path else page
    assert dest.exists(), f"{page.name}: {target} does not exist"
    if anchor and dest.suffix == ".md":
        assert anchor in _anchors(dest), f"{page.name}: no heading #{anchor} in {dest.name}"


def _tokens(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    return list(lexer)


def _commands(block: str) -> list[list[str]]:
    """The simple commands of a shell block: lines joined at backslashes and open quotes,
    split at operators and $(...), comments dropped."""
    commands, pending = [], ""
    for line in block.replace("\\\n", " ").splitlines():
        try:
            tokens = _tokens(pending + line)
        except ValueError:  # a quote that the next line closes
            pending += line + "\n"
            continue
        pending, current = "", []
        for token in tokens:
            if token in OPERATORS:
                commands.append(current)
                current = []
            elif token.endswith("$"):  # box=$(...: the word before $( ends a command
                commands.append([*current, token[:-1]])
                current = []
            else:
                current.append(token)
        commands.append(current)
    assert not pending, f"unclosed quote in: {pending}"
    return [c for c in commands if c]


def _cellbox_commands() -> list[tuple[str, list[str]]]:
    found = []
    for page in PAGES:
        for lang, block in FENCE.findall(page.read_text()):
            if lang not in SHELLS:
                continue
            for argv in _commands(block):
                while argv and (argv[0] == "sudo" or re.match(r"\w+=", argv[0])):
                    argv = argv[1:]  # sudo, and VAR=value before the command
                if argv and os.path.basename(argv[0]) == "cellbox":
                    # [--json] in an example marks an optional option
                    found.append((page.name, [re.sub(r"^\[(.*)\]$", r"\1", a)
                                              for a in argv[1:]]))
    return found


@pytest.mark.parametrize(("page", "argv"), _cellbox_commands(),
                         ids=lambda v: " ".join(v) if isinstance(v, list) else v)
@pytest.mark.unit
def test_documented_command_parses(page: str, argv: list[str],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    try:
        if argv and argv[0] in subcommands.SUBCOMMANDS:
            _, parser = subcommands.resolve(argv[0])
            parser().parse_args(argv[1:])
        else:  # isolate's grammar, and 'cellbox run', which shares its options
            values, program = options.parse(argv[1:] if argv[:1] == ["run"] else argv)
            assert values or program, argv
    except SystemExit as e:  # --help prints and exits 0
        assert e.code == 0, argv
    except CellboxError as e:
        pytest.fail(f"{page}: cellbox {' '.join(argv)}: {e}")


@pytest.mark.unit
def test_every_doc_is_in_the_index() -> None:
    index = (ROOT / "docs" / "README.md").read_text()
    for page in (ROOT / "docs").glob("*.md"):
        if page.name != "README.md":
            assert f"]({page.name})" in index, f"docs/README.md does not link {page.name}"
    assert "](docs/README.md)" in (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[tuple[str, str]]:
    return [(page.name, block) for page in PAGES
            for fence, block in FENCE.findall(page.read_text()) if fence == lang]


@pytest.mark.unit
def test_python_examples_compile() -> None:
    """Examples compile; a signature (``Box(box_id: int | None = None, ...)``) compiles as a
    def. A SyntaxError names the page."""
    for page, block in _blocks("python"):
        signature = re.match(r"[\w.]+\(", block)
        if signature and block.rstrip().endswith(")"):
            block = f"def _({block[signature.end():].rstrip()}: ..."
        compile(block, page, "exec")


@pytest.mark.unit
def test_config_examples_load(tmp_path: Path) -> None:
    """A TOML example of the box configuration is a valid configuration."""
    for page, block in _blocks("toml"):
        if page == "config.md":
            (tmp_path / "cellbox.toml").write_text(block)
            load_config(str(tmp_path / "cellbox.toml"))
        else:
            tomllib.loads(block)


# ---- every documented command runs, exactly as written -------------------------------------
# Each page's shell blocks run in order in one bash, as a reader would type them: as root, in
# a scratch directory holding the files the pages assume (GIVEN), with the repository's .venv
# beside them and on PATH (as README's "The command line" sets it), the tests' configuration,
# no keeper daemon, and a network namespace of its own (port 2358 is the test's). After each
# command its exit code is recorded: it must be 0 unless FAILS says otherwise, and what the
# page shows as its output (an exit code, JSON fields, meta keys) must be what it printed.

VENV = ROOT / ".venv"
A_PLUS_B = {
    "sol.c": '#include <stdio.h>\nint main(void) { long a, b; if (scanf("%ld %ld", &a, &b) != 2)'
             ' return 0; printf("%ld\\n", a + b); return 0; }\n',
    "main.cpp": "#include <iostream>\nint main() { long a, b; std::cin >> a >> b; "
                "std::cout << a + b << std::endl; }\n",
    "Main.java": "public class Main { public static void main(String[] args) { "
                 "var s = new java.util.Scanner(System.in); "
                 "System.out.println(s.nextLong() + s.nextLong()); } }\n",
}
HELLO_CC = '#include <iostream>\nint main() { std::cout << "Hello World!" << std::endl; }\n'
HELLO = {  # the problem package the pages judge: hello/, and a submission beside it
    "hello/problem.yaml": "name: Hello\n", "hello/.timelimit": "1\n",
    "hello/data/sample/1.in": "", "hello/data/sample/1.ans": "Hello World!\n",
    "hello/data/secret/1.in": "", "hello/data/secret/1.ans": "Hello World!\n",
    "hello/submissions/accepted/hello.cc": HELLO_CC,
    "hello.cc": HELLO_CC,
}
GIVEN = {**A_PLUS_B, **HELLO, "in.txt": "1 2\n", "tests/1.in": "1 2\n", "tests/1.out": "3\n",
         "tests/2.in": "40 2\n", "tests/2.out": "42\n"}
# Commands not run here (matched by how they start), and why.
NOT_RUN = {
    "sudo scripts/demo.sh": "test_demo_runs_as_documented runs it from the repository",
    "sudo scripts/test.sh": "the test suite itself",
    ".venv/bin/python -m pytest": "the test suite itself",
    "systemctl ": "changes the host's services; test_unit_exec_start runs the units' ExecStart",
    "systemd-run --user": "needs a user's systemd session",
    "cp systemd/cellbox.service /etc/": "installs into the host",
    "install -m644 systemd/": "installs into the host",
    "ln -sf \"$PWD/.venv/bin/cellbox\" /usr/local/bin/": "installs into the host; "
                                                        "test_unit_exec_start does it privately",
    "redis-server --bind 10.0.0.1": "machine A of an example with several machines",
    "cat > /etc/cellbox-service.toml": "machine A of an example with several machines",
    "cellbox serve --config /etc/cellbox-service.toml": "machine A of an example with several "
                                                        "machines",
    "cellbox worker --broker 'redis://:S3cret": "machine B of an example with several machines",
    "cellbox chaos": "its default box uids (61000...) may be a parallel test session's; "
                     "test_lifecycle.py runs the same with uids of the session's own",
    "sudo .venv/bin/cellbox chaos": "the same",
    "sudo benchmarks/run": "minutes of benchmarks; test_bench.py runs every case",
    "sudo .venv/bin/python scripts/cgroup_figures.py": "measurements for the page (minutes)",
    "sudo python3 ../shared/vm/run-in-vm": "CI's virtual machine",
    "adduser ": "changes the host's users; tests/test_daemon_users.py makes users of its own",
}
# Python examples not run here (matched by a line they contain), and why.
NOT_RUN_PYTHON = {
    "judge0.Client(": "needs a running server; tests/test_judge0_sdk.py makes the same calls "
                      "against one",
}
# Commands that the pages show failing, with their exit code.
FAILS = {
    "cellbox -b 1 --time=1 --run -- /usr/bin/python3 -c 'while True: pass'": 1,
    "cellbox run -s -M - --cg-mem=64M -- /usr/bin/python3 -c 'x = bytearray(200 << 20)'": 1,
}
SERVICE = re.compile(r"(^|/)cellbox serve\b(?!.*&$)")  # in the foreground: its own terminal
VARIES = {"time", "memory", "token"}  # shown in JSON examples as one possible value
META_SHOWN = ("status", "exceeded", "cellbox-status")  # meta keys shown in examples, checked


@dataclass
class Command:
    page: str
    text: str  # as on the page (lines joined), without its comment
    comment: str  # its comment on the same line, and the comment lines below it

    def skipped(self) -> str | None:
        return next((why for start, why in NOT_RUN.items() if self.text.startswith(start)),
                    None)


def _shell_commands(page: Path) -> list[Command]:
    """The page's shell commands in order: a command ends where its line ends, unless a
    backslash, an open quote or a here-document continues it."""
    found: list[Command] = []
    for lang, block in FENCE.findall(page.read_text()):
        if lang not in SHELLS:
            continue
        pending, heredoc, first = "", None, len(found)
        for line in block.splitlines():
            if heredoc is not None:
                pending += line + "\n"
                if line == heredoc:
                    found.append(Command(page.name, pending.rstrip("\n"), ""))
                    pending, heredoc = "", None
                continue
            if not pending and line.lstrip().startswith("#"):
                if len(found) > first:  # a comment line shows the output of the command above
                    found[-1].comment += "\n" + line.lstrip("# ")
                continue
            if not pending and not line.strip():
                continue
            mark = re.search(r"(^|\s)# ", line)
            code, comment = (line[:mark.start()], line[mark.end():]) if mark else (line, "")
            pending += code.rstrip() + "\n"
            if code.rstrip().endswith("\\"):
                continue
            try:
                _tokens(pending)
            except ValueError:  # an open quote
                continue
            marker = re.search(r"<<-?'?(\w+)'?", pending)
            if marker:
                heredoc = marker.group(1)
                continue
            found.append(Command(page.name, pending.strip(), comment.strip()))
            pending = ""
        assert not pending, f"{page.name}: unfinished command {pending!r}"
    return found


def _scratch(tmp_path: Path) -> Path:
    for name, text in GIVEN.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / ".venv").symlink_to(VENV)
    return tmp_path


def _env(scratch: Path) -> dict[str, str]:
    return {**os.environ, "PATH": f"{VENV}/bin:{os.environ['PATH']}",
            "CELLBOX_KEEPER_SOCKET": str(scratch / "no-daemon.sock"), "PYTHONPATH": ""}


PREAMBLE = r"""set -o pipefail
shopt -s expand_aliases
alias sudo=env  # the tests run as root; env execs the command (a background job's pid is it)
ip link set lo up
up() {  # wait for the service that a reader would start in another terminal
    for _ in $(seq 600); do curl -sf "localhost:$1/healthz" >/dev/null && return; sleep 0.1; done
    echo "nothing answers on port $1" >&2; return 1
}
trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT
"""


def _bash(argv: list[str], cwd: Path, env: dict[str, str],
          timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run a script in a session of its own: on a timeout, all of it is killed."""
    with subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            pytest.fail(f"timed out after {timeout} s:\n{out}\n{err}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _run_page(page: Path, scratch: Path) -> list[tuple[Command, int, str]]:
    """Run the page's commands; each with its exit code and its output."""
    commands = [c for c in _shell_commands(page) if not c.skipped()]
    script = [PREAMBLE]
    for i, c in enumerate(commands):
        text = f"{c.text} &\nup 2358" if SERVICE.search(c.text) else c.text
        # The marker starts a line (the output may not end one) and keeps $? for `echo $?`.
        script.append(f"{text}\nrc=$?; printf '\\n@@ {i} %d\\n' $rc; (exit $rc)\n")
    proc = _bash(["unshare", "--net", "bash", "-c", "\n".join(script)], scratch, _env(scratch))
    outputs = re.split(r"\n@@ \d+ (\d+)\n", "\n" + proc.stdout)
    assert len(outputs) == 2 * len(commands) + 1, \
        f"{page.name}: the commands did not all run:\n{proc.stdout}\n{proc.stderr}"
    return [(c, int(outputs[2 * i + 1]), outputs[2 * i]) for i, c in enumerate(commands)]


def _shown(comment: str) -> list[str]:
    """What a comment shows of a command's output: JSON fields and meta keys (the figures
    that vary from run to run left out), or an exit code or output value alone."""
    fields = [f'"{k}":{v}' for k, v in
              re.findall(r'"(\w+)": ("(?:[^"\\]|\\.)*"|-?[\d.]+|null|true|false)', comment)
              if v != '"..."' and k not in VARIES]
    meta = [m for m in re.findall(r"\b([\w-]+:\w+)\b", comment)
            if m.split(":")[0] in META_SHOWN]
    return fields or meta


def _pages_with_commands() -> list[Path]:
    return [p for p in PAGES if any(not c.skipped() for c in _shell_commands(p))]


@pytest.mark.parametrize("page", _pages_with_commands(), ids=lambda p: str(p.relative_to(ROOT)))
def test_documented_commands_run(page: Path, tmp_path: Path) -> None:
    for command, code, output in _run_page(page, _scratch(tmp_path)):
        where = f"{page.name}: {command.text}"
        assert code == FAILS.get(command.text, 0), f"{where} exited {code}:\n{output}"
        compact = re.sub(r"\s", "", output)
        for shown in _shown(command.comment):
            assert shown.replace(" ", "") in compact, f"{where}: no {shown} in:\n{output}"
        value = re.match(r"(\d+)\b", command.comment)
        if value and re.match(r"(echo \$\?|cat )", command.text):
            assert output.split()[:1] == [value.group(1)], f"{where}: printed {output!r}"


def test_demo_runs_as_documented() -> None:
    """README's first command, from the repository as it says (bootstrap, then the demo)."""
    proc = subprocess.run(["scripts/demo.sh"], cwd=ROOT, env=_env(ROOT), capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _examples() -> list[tuple[str, str]]:
    """The Python examples that are programs (not a signature such as ``Box(box_id, ...)``)."""
    return [(page, block) for page, block in _blocks("python")
            if not (re.match(r"[\w.]+\(", block) and block.rstrip().endswith(")"))
            and not any(line in block for line in NOT_RUN_PYTHON)]


@pytest.mark.parametrize(("page", "example"), _examples(),
                         ids=[f"{p}:{b.splitlines()[-1][:30]}" for p, b in _examples()])
def test_python_example_runs(page: str, example: str, tmp_path: Path) -> None:
    """Each example runs as a program (in a scratch directory with the GIVEN files), and
    what a ``print(...)  # shown`` line shows is in what it printed."""
    scratch = _scratch(tmp_path)
    proc = subprocess.run([str(VENV / "bin" / "python"), "-c", example], cwd=scratch,
                          env=_env(scratch), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{page}:\n{example}\n{proc.stderr}"
    for shown in re.findall(r"^\s*print\(.*\)\s+# (.*)$", example, re.M):
        assert shown in proc.stdout, f"{page}: {shown!r} not in {proc.stdout!r}"


def _unit(name: str) -> tuple[str, dict[str, str]]:
    """A systemd unit's ExecStart command line and its Environment= variables."""
    text = (ROOT / "systemd" / name).read_text()
    env = dict(v.split("=", 1) for v in re.findall(r"^Environment=(.*)$", text, re.M))
    return re.search(r"^ExecStart=(.*)$", text, re.M).group(1), env  # type: ignore[union-attr]


UNIT_CHECKS = {
    # the service answers, and a Judge0 submission that exits 1 is Runtime Error (NZEC)
    "cellbox-serve.service": """up 2358
curl -s -X POST 'localhost:2358/submissions?wait=true' -H 'content-type: application/json' \
     -d '{"language_id": 50, "source_code": "int main(void){return 1;}"}'""",
    # the daemon listens where the command line looks for it, and commands go through it
    "cellbox-keeperd.service": """for _ in $(seq 600); do [ -S /run/cellbox/keeper.sock ] && break; sleep 0.1; done
cellbox -b 190 --init && cellbox -b 190 --cleanup && echo '"served": true'""",
}
UNIT_SHOWS = {"cellbox-serve.service": '"status":{"id":11,"description":"Runtime Error (NZEC)"}',
              "cellbox-keeperd.service": '"served": true'}


@pytest.mark.parametrize("unit", sorted(p.name for p in (ROOT / "systemd").glob("*.service")))
def test_unit_exec_start(unit: str, tmp_path: Path) -> None:
    """Each unit's ExecStart, run as its install comment sets up (/usr/local/bin/cellbox is
    the repository's launcher; here in a mount and network namespace of the test's own)."""
    command, variables = _unit(unit)
    check = UNIT_CHECKS.get(unit)
    script = (f"mount -t tmpfs tmpfs /usr/local/bin && mount -t tmpfs tmpfs /run/cellbox && "
              f"ln -s {VENV}/bin/cellbox /usr/local/bin/cellbox\n{PREAMBLE}\n"
              + (f"sh -c 'exec {command}' &\n{check}\n" if check else f"exec {command}\n"))
    env = {**_env(tmp_path), **variables}
    del env["CELLBOX_KEEPER_SOCKET"]  # the unit's own, as systemd starts it
    os.makedirs("/run/cellbox", exist_ok=True)
    proc = _bash(["unshare", "--mount", "--net", "--propagation", "private", "bash", "-c",
                  script], tmp_path, env, timeout=300)
    if check:
        assert UNIT_SHOWS[unit] in proc.stdout, proc.stdout + proc.stderr
    else:  # cellbox.service is a template: its ExecStart says to replace it, and fails
        assert proc.returncode == 1 and "set ExecStart=" in proc.stderr, proc.stderr


HISTORY = re.compile(r"\bissue \d+|\b(first|second|third) part\b|\bwhat changed\b", re.I)


def test_docs_and_messages_describe_the_present() -> None:
    """No issue numbers, parts or change logs in the docs or in what the product prints."""
    sources = [*PAGES, *sorted((ROOT / "cellbox").rglob("*.py")),
               *sorted((ROOT / "systemd").glob("*")), *sorted((ROOT / "scripts").glob("*"))]
    found = [f"{path.relative_to(ROOT)}: {m.group(0)}" for path in sources if path.is_file()
             for m in HISTORY.finditer(path.read_text(errors="replace"))]
    assert not found, found
