"""Every shipped language, compiled and run in the box, earns each verdict for real.

One program per language (tests/languages/) picks its behaviour from the first line of stdin,
so each toolchain compiles it once per session; compile errors and compiler bombs are separate.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from cellbox.errors import UsageError
from cellbox.judge import (
    Compilation,
    JudgeLimits,
    Verdict,
    compile_source,
    run_compiled,
    run_verdict,
)
from cellbox.judge.sandbox import toolchain_version
from cellbox.languages import (
    COMPILE_LIMITS,
    Language,
    ProfileError,
    get,
    languages,
    parse_profile,
)
from cellbox.result import Status
from tests.support.boxes import cellbox

pytestmark = pytest.mark.languages

SOURCES = Path(__file__).parent / "languages"
PROGRAM = {"python": "modes.py", "c": "modes.c", "cpp": "modes.cpp", "java": "Main.java",
           "javascript": "modes.js", "rust": "modes.rs"}
BROKEN = {"python": "print(\n", "c": "int main(void) { return x; }\n",
          "cpp": "int main() { std::vector<int> v; }\n",
          "java": "public class Main { void f() { int x = \"s\"; } }\n",
          "javascript": "function (\n", "rust": "fn main() { let x: u32 = \"s\"; }\n"}
LIMITS = JudgeLimits(time=1, wall_time=3, memory=256 << 20, output=1 << 20).limits()
NAMES = sorted(PROGRAM)


@pytest.mark.unit
def test_every_shipped_language_has_a_test_program() -> None:
    assert sorted(languages()) == NAMES


def available(name: str) -> Language:
    if toolchain_version(get(name)) is None:
        pytest.skip(f"{name}: its toolchain does not run in a box on this machine "
                    "(scripts/bootstrap.sh installs gcc, g++, a JDK, node and rustc)")
    return get(name)


@pytest.fixture(scope="session")
def compiled() -> dict[str, Compilation]:
    """Each language's test program, compiled once (lazily) for the session."""
    return {}


def program(compiled: dict[str, Compilation], name: str) -> Compilation:
    lang = available(name)
    if name not in compiled:
        c = compile_source(lang, (SOURCES / PROGRAM[name]).read_bytes())
        assert c.ok, c.message
        compiled[name] = c
    return compiled[name]


def run(compiled: dict[str, Compilation], name: str, stdin: str):  # noqa: ANN201
    c = program(compiled, name)
    r = run_compiled(c, LIMITS, stdin.encode())
    return r, run_verdict(r, c.language)


@pytest.mark.parametrize("name", NAMES)
def test_hello(compiled, name: str) -> None:  # noqa: ANN001
    r, verdict = run(compiled, name, "hello\n")
    assert verdict is None and r.stdout == b"hello\n", (r.status, r.stderr)


@pytest.mark.parametrize("name", NAMES)
def test_echo_stdin(compiled, name: str) -> None:  # noqa: ANN001
    r, verdict = run(compiled, name, "echo\nabc def\n42\n")
    assert verdict is None and r.stdout == b"abc def\n42\n", (r.status, r.stderr)


@pytest.mark.parametrize("name", NAMES)
def test_compile_error(name: str) -> None:
    c = compile_source(available(name), BROKEN[name].encode())
    assert not c.ok and c.result is not None
    assert c.result.status is Status.RUNTIME_ERROR and c.message, c.message


@pytest.mark.parametrize("name", NAMES)
def test_runtime_error(compiled, name: str) -> None:  # noqa: ANN001
    r, verdict = run(compiled, name, "re\n")
    assert verdict is Verdict.RE, (r.status, r.stderr)


@pytest.mark.parametrize("name", NAMES)
def test_cpu_time_limit(compiled, name: str) -> None:  # noqa: ANN001
    r, verdict = run(compiled, name, "cpu\n")
    assert verdict is Verdict.TLE and r.status is Status.TIME_LIMIT, (r.status, r.stderr)


@pytest.mark.parametrize("name", NAMES)
def test_sleeping_gets_wall_time_limit(compiled, name: str) -> None:  # noqa: ANN001
    r, verdict = run(compiled, name, "sleep\n")
    assert verdict is Verdict.TLE and r.status is Status.WALL_TIME_LIMIT, (r.status, r.stderr)
    assert r.wall_time < 30  # stopped, not left to sleep


@pytest.mark.parametrize("name", NAMES)
def test_heap_memory_limit(compiled, name: str) -> None:  # noqa: ANN001
    r, verdict = run(compiled, name, "mle\n")
    assert verdict is Verdict.MLE, (r.status, r.exit_code, r.signal, r.stderr[-500:])
    assert r.peak_memory is not None and r.peak_memory <= 256 << 20


@pytest.mark.parametrize("name", NAMES)
def test_output_limit(compiled, name: str) -> None:  # noqa: ANN001
    r, verdict = run(compiled, name, "ole\n")
    assert verdict is Verdict.OLE and r.stdout_truncated, (r.status, r.stderr)


@pytest.mark.parametrize("name", NAMES)
def test_nonzero_exit(compiled, name: str) -> None:  # noqa: ANN001
    r, verdict = run(compiled, name, "exit\n")
    assert verdict is Verdict.RE and r.exit_code == 3, (r.status, r.stderr)


def test_java_hello_under_256m_counts_the_whole_jvm(compiled) -> None:  # noqa: ANN001
    c = program(compiled, "java")
    argv = c.language.run_argv(LIMITS)
    assert "-Xmx192m" in argv and "-XX:MaxRAM=256m" in argv
    r = run_compiled(c, LIMITS, b"hello\n")
    assert r.ok and r.stdout == b"hello\n"
    assert r.peak_memory is not None and 0 < r.peak_memory < 256 << 20


def test_java_heap_overflow_is_mle_through_out_of_memory_error(compiled) -> None:  # noqa: ANN001
    r, verdict = run(compiled, "java", "mle\n")
    assert verdict is Verdict.MLE
    assert b"java.lang.OutOfMemoryError" in r.stderr or r.oom_killed, r.stderr[-300:]


# -- compiler bombs: a clean CE within the compile limits, never a hang ---------------------

BOMB_LIMITS = dataclasses.replace(COMPILE_LIMITS, time=2.0, wall_time=4.0)


def test_include_recursion_is_a_compile_error() -> None:
    c = compile_source(available("c"), b'#include "main.c"\nint main(void) { return 0; }\n',
                       BOMB_LIMITS)
    assert not c.ok and "nested depth" in c.message, c.message[-300:]


def test_template_explosion_stops_at_a_compile_limit() -> None:
    source = ("template <class T, int N> struct B {\n"
              "  static const long v = B<T*, N - 1>::v + B<const T, N - 1>::v;\n};\n"
              "template <class T> struct B<T, 0> { static const long v = 1; };\n"
              "int main() { return B<int, 40>::v == 0; }\n")
    c = compile_source(available("cpp"), source.encode(), BOMB_LIMITS)
    assert not c.ok and c.result is not None
    assert c.result.status in (Status.TIME_LIMIT, Status.WALL_TIME_LIMIT, Status.MEMORY_LIMIT,
                               Status.RUNTIME_ERROR), c.message[-300:]
    assert c.result.wall_time < 30  # stopped, not left to run


def test_gigantic_diagnostics_are_capped() -> None:
    source = "".join(f"int f{i}(void) {{ return undefined_{i}; }}\n" for i in range(20000))
    c = compile_source(available("c"), source.encode(), BOMB_LIMITS)
    assert not c.ok and c.result is not None
    assert c.result.status is Status.OUTPUT_LIMIT, c.result.status
    assert len(c.message) < 20 << 10 and "undefined_0" in c.message
    assert c.message.endswith("[compilation stopped: Output limit exceeded]")


# -- profiles -------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "complaint"), [
    ('name = "x"\ntitle = "X"\nsource = "a"\nversion = ["x"]\n', "'run' must be a list"),
    ('name = "x"\ntitle = "X"\nsource = "a"\nversion = ["x"]\nrun = ["{nope}"]\n',
     "unknown placeholder"),
    ('name = "x"\ntitle = "X"\nsource = "a"\nversion = ["x"]\nrun = ["x"]\n'
     '[run_limits]\ntime = 3\n', "cannot set 'time'"),
    ('name = "x"\ntitle = "X"\nsource = "a/b"\nversion = ["x"]\nrun = ["x"]\n', "plain file"),
    ('name = "x"\nbogus = 1\n', "unknown key(s) bogus"),
    ("name = [", "not valid TOML"),
    ('name = "x"\ntitle = "X"\nsource = "a"\nversion = ["x"]\nrun = ["x"]\n'
     'compiler_options = true\n', "needs the source file in the compile command"),
    ('name = "x"\ntitle = "X"\nsource = "a"\nversion = ["x"]\nrun = ["x"]\n'
     'compiler_options = 1\n', "compiler_options must be true or false"),
])
@pytest.mark.unit
def test_bad_profiles_are_refused_clearly(text: str, complaint: str) -> None:
    with pytest.raises(ProfileError, match="Language profile bad.toml") as e:
        parse_profile("bad.toml", text)
    assert complaint in str(e.value)


@pytest.mark.unit
def test_compiler_options_go_before_the_source_or_are_refused() -> None:
    argv = get("c").compile_argv(COMPILE_LIMITS, ["-O0", "-DX=1"])
    assert argv[argv.index("main.c") - 2:argv.index("main.c")] == ["-O0", "-DX=1"]
    assert argv.index("-O2") < argv.index("-O0")  # the caller's flag comes later and wins
    with pytest.raises(UsageError, match="'python' takes no compiler options"):
        get("python").compile_argv(COMPILE_LIMITS, ["-O"])


def test_a_toolchain_the_box_cannot_see_is_unavailable() -> None:
    profile = ('name = "ghost"\ntitle = "Ghost"\nsource = "a"\nversion = ["ghost", "-v"]\n'
               'run = ["ghost"]\n')
    assert toolchain_version(parse_profile("ghost.toml", profile)) is None
    missing_dir = profile.replace('"ghost", "-v"', '"true"').replace(
        'name = "ghost"', 'name = "ghost2"') + 'dirs = ["/etc/no-such-toolchain-dir"]\n'
    assert toolchain_version(parse_profile("ghost2.toml", missing_dir)) is None


def test_languages_command_lists_versions_detected_in_the_box() -> None:
    proc = cellbox("languages", "--json", check=True)
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert sorted(rows) == NAMES
    for name, row in rows.items():
        assert row["available"] is (row["version"] is not None)
        if row["available"]:
            assert row["version"] == toolchain_version(get(name))
    table = cellbox("languages", check=True).stdout.decode()
    assert "Java (OpenJDK 17)" in table
