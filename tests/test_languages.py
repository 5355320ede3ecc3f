"""Every shipped language, compiled and run in the box, earns each verdict for real.

One program per language (tests/languages/) picks its behaviour from the first line of stdin,
so each toolchain compiles it once per session; compile errors and compiler bombs are separate.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from cellbox.errors import UsageError
from cellbox.judge import (
    Compilation,
    Verdict,
    compile_and_run,
    compile_source,
    run_compiled,
    run_verdict,
)
from cellbox.judge.sandbox import on_host, require_toolchain, toolchain_version
from cellbox.languages import (
    COMPILE_LIMITS,
    Language,
    ProfileError,
    get,
    judge0_table,
    languages,
    parse_profile,
)
from cellbox.limits import JUDGE, Limits
from cellbox.result import Status
from cellbox.server.judge0 import PROJECT_ID
from tests.support.boxes import cellbox
from tests.support.skips import lacks

pytestmark = pytest.mark.languages

SOURCES = Path(__file__).parent / "languages"
# One program per language in modes/, one that must not compile in broken/, named after the
# language (any extension); a language may share another's (clang compiles gcc's sources).
SHARES = {"c-clang": "c", "cpp-clang": "cpp"}
# Plain Text and Executable are not programming languages: they have tests of their own.
NOT_PROGRAMS = {"plaintext", "executable"}
# Languages with no separate check before the run: a broken program fails its run (RE).
NO_CHECK = {"bash", "sqlite"}
# A generous wall time: the CPU-bound cases must reach the CPU limit even on a machine so
# loaded that a run gets a tenth of a core.
LIMITS = JUDGE.limits(time=1, wall_time=30, memory=256 << 20, output=1 << 20)
SLEEP_LIMITS = dataclasses.replace(LIMITS, wall_time=3)
# Runtimes whose start alone takes more than half a second of CPU here (Clojure and Groovy
# load and compile much of themselves): their tests get 3 s of CPU.
SLOW_START = {"clojure", "groovy"}
NAMES = sorted(set(languages()) - NOT_PROGRAMS)


def source(kind: str, name: str) -> bytes:
    found = sorted((SOURCES / kind).glob(f"{SHARES.get(name, name)}.*"))
    assert len(found) == 1, f"tests/languages/{kind}/ needs one file for {name}"
    return found[0].read_bytes()


@pytest.mark.unit
def test_every_shipped_language_has_test_programs() -> None:
    for name in NAMES:
        source("modes", name)
        source("broken", name)


def available(name: str) -> Language:
    """The language, if the host has its toolchain. A toolchain the host has but a box
    cannot run is a failure (a box regression), never a skip."""
    lang = get(name)
    if not on_host(lang):
        lacks(f"the {name} toolchain (its version command fails on the host; apt-get "
              f"install {' '.join(lang.packages)})")
    require_toolchain(lang)  # raises, saying so, if the box cannot run it
    return lang


@pytest.fixture
def worker_boxes() -> Iterator[None]:
    """For a test that runs a service job in this process: the warm boxes that a worker keeps
    for its life are closed after the test, as at a worker's exit."""
    from cellbox.server.jobs import close_warm_pool

    yield
    close_warm_pool()


@pytest.fixture(scope="session")
def compiled() -> dict[str, Compilation]:
    """Each language's test program, compiled once (lazily) for the session."""
    return {}


def program(compiled: dict[str, Compilation], name: str) -> Compilation:
    lang = available(name)
    if name not in compiled:
        c = compile_source(lang, source("modes", name))
        assert c.ok, c.message
        compiled[name] = c
    return compiled[name]


def run(compiled: dict[str, Compilation], name: str, stdin: str,  # noqa: ANN201
        limits: Limits = LIMITS):
    c = program(compiled, name)
    if name in SLOW_START:
        limits = dataclasses.replace(limits, time=3.0)
    r = run_compiled(c, limits, stdin.encode())
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
    lang = available(name)
    c = compile_source(lang, source("broken", name))
    if name in NO_CHECK:
        assert c.ok and not lang.compile
        r = run_compiled(c, LIMITS)
        assert run_verdict(r, lang) is Verdict.RE and r.stderr, (r.status, r.stderr)
        return
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
    r, verdict = run(compiled, name, "sleep\n", SLEEP_LIMITS)
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


def test_plain_text_is_its_own_output() -> None:
    text = b"Plain text,\nprinted as it is.\n"
    result = compile_and_run(available("plaintext"), text, b"ignored stdin\n")
    assert result.verdict is Verdict.AC and result.run is not None, result.compilation.message
    assert result.run.stdout == text


def test_executable_runs_a_ready_program(compiled) -> None:  # noqa: ANN001
    binary = next(a for a in program(compiled, "c").artifacts if a.name == "main")
    data = Path(binary.path).read_bytes()
    lang = available("executable")
    for stdin, verdict, stdout, exit_code in ((b"hello\n", Verdict.AC, b"hello\n", 0),
                                              (b"exit\n", Verdict.RE, b"", 3)):
        result = compile_and_run(lang, data, stdin, LIMITS)
        assert result.verdict is verdict and result.run is not None, result.compilation.message
        assert (result.run.stdout, result.run.exit_code) == (stdout, exit_code)
    result = compile_and_run(lang, b"not a program\n", b"", LIMITS)
    assert result.verdict in (Verdict.RE, Verdict.IE) and result.run is not None
    assert result.run.exit_code != 0


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
     'compiler_options = ["-O"]\n', "needs the source file in the compile command"),
    ('name = "x"\ntitle = "X"\nsource = "a"\nversion = ["x"]\nrun = ["x"]\n'
     'compiler_options = "nosuchset"\n', "names no option set"),
    ('name = "x"\ntitle = "X"\nsource = "a"\nversion = ["x"]\nrun = ["x"]\n'
     'compiler_options = ["-O("]\n', "not a valid regular expression"),
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
    assert sorted(rows) == sorted(languages())
    for name, row in rows.items():
        assert row["available"] is (row["version"] is not None)
        if row["available"]:
            assert row["version"] == toolchain_version(get(name))
        assert row["title"] == get(name).titled(row["version"])
        assert row["judge0_ids"] == list(get(name).judge0_ids)
    table = cellbox("languages", check=True).stdout.decode()
    assert f"Java (OpenJDK {rows['java']['version']})" in table and "48 49 50" in table


# -- compiler options: an allow-list per language, and the admin's caps bound compilation ----

# Options that make the compiler run a program of the submission's choosing at compile time
# (a wrapper, a plugin, another linker, an annotation processor, a java agent), or read more
# options from a file the submission wrote.
CODE_RUNNING_OPTIONS = [
    ("c", ["-wrapper", "/bin/sh,w.sh"]), ("c", ["-wrapper=/bin/sh,w.sh"]), ("c", ["-B."]),
    ("c", ["-B", "."]), ("c", ["-specs=evil.specs"]), ("c", ["-fplugin=./p.so"]),
    ("c", ["@opts"]), ("c", ["-Wl,-plugin=./p.so"]), ("c", ["-Xlinker", "--plugin"]),
    ("c", ["-fuse-ld=./ld"]), ("cpp", ["-wrapper", "/bin/sh,w.sh"]), ("cpp", ["-B./"]),
    ("rust", ["-C", "linker=./w.sh"]), ("rust", ["-Clinker=./w.sh"]),
    ("rust", ["-Zunstable-options"]), ("rust", ["--extern", "x=./libx.rlib"]),
    ("java", ["-processorpath", "."]), ("java", ["-J-javaagent:a.jar"]), ("java", ["@args"]),
    ("java", ["-Xplugin:Evil"]),
]


@pytest.mark.parametrize(("name", "options"), CODE_RUNNING_OPTIONS)
def test_code_running_compiler_options_are_refused(name: str, options: list[str]) -> None:
    with pytest.raises(UsageError, match="compiler option .* is not allowed"):
        get(name).compile_argv(COMPILE_LIMITS, options)


@pytest.mark.parametrize(("name", "options"), [
    ("c", ["-O0", "-DX=1", "-DONLINE_JUDGE", "-std=c11", "-Wall", "-Wextra", "-lm", "-g"]),
    ("cpp", ["-O3", "-std=c++20", "-Werror=return-type", "-w", "-march=native"]),
    ("java", ["-g", "-Xlint:all", "-nowarn"]),
    ("rust", ["-Copt-level=3", "-g", "--edition=2018", "-Coverflow-checks=on"]),
])
def test_common_compiler_options_are_allowed(name: str, options: list[str]) -> None:
    argv = get(name).compile_argv(COMPILE_LIMITS, options)
    at = argv.index(get(name).source)
    assert argv[at - len(options):at] == options


def test_a_wrapper_option_never_runs_the_submissions_script() -> None:
    lang = available("c")
    script = b"touch ran\nexec \"$@\"\n"
    with pytest.raises(UsageError, match="'-wrapper' is not allowed"):
        compile_source(lang, b"int main(void) { return 0; }\n", files={"w.sh": script},
                       options=["-wrapper", "/bin/sh,w.sh"])


def test_the_admins_caps_bound_the_compile_step() -> None:
    caps = Limits(time=1.0, wall_time=2.0, memory=64 << 20, processes=1, output=4096,
                  file_size=1 << 20)
    bounded = get("java").compile_limits(caps)
    for key in ("time", "wall_time", "memory", "processes", "output", "file_size"):
        assert getattr(bounded, key) == getattr(caps, key), key
    assert get("c").compile_limits(Limits(time=100.0, processes=None)) == get("c").compile_limits()


def test_a_service_job_compiles_under_the_admins_caps(worker_boxes: None) -> None:
    from cellbox.server.config import ServiceConfig
    from cellbox.server.jobs import execute
    from cellbox.server.native import RunIn, to_job

    available("c")
    source = "int main(void) { return 0; }"
    roomy = to_job(RunIn.model_validate({"language": "c", "source": source}), ServiceConfig())
    assert execute(roomy.to_dict())["verdict"] == "AC"
    # gcc forks cc1, as and ld: with the admin's one process, compilation itself must fail.
    tight = to_job(RunIn.model_validate({"language": "c", "source": source}),
                   ServiceConfig(max_processes=1))
    out = execute(tight.to_dict())
    assert out["verdict"] == "CE", out


@pytest.mark.parametrize("request_body", [
    {"language": "c", "source": "int main(void){}", "compiler_options": ["-wrapper", "x"]},
    {"language": "rust", "source": "fn main(){}", "compiler_options": ["-Clinker=./x"]},
])
def test_the_native_api_refuses_code_running_options(request_body: dict) -> None:
    from cellbox.server.config import ServiceConfig
    from cellbox.server.errors import ApiError
    from cellbox.server.native import RunIn, to_job

    with pytest.raises(ApiError, match="is not allowed") as e:
        to_job(RunIn.model_validate(request_body), ServiceConfig())
    assert e.value.status == 422


# -- Judge0 ids: every Judge0 CE 1.13.1 id is answered by one profile or refused with why ---

def test_every_judge0_ce_id_is_answered_or_refused_with_a_reason() -> None:
    answered, unsupported = judge0_table()
    # Judge0 CE 1.13.1's 47; the server runs 89 (multi-file programs) itself
    assert sorted([*answered, *unsupported, PROJECT_ID]) == list(range(43, 90))
    assert len(answered) >= 40
    assert {answered[i].name for i in (48, 49, 50)} == {"c"}
    assert all(u.reason for u in unsupported.values())


@pytest.mark.parametrize(("language_id", "says"), [
    (70, "id 70 (Python (2.7.17)) is not supported here: Debian 12 no longer packages"),
    (83, "Swift"), (1, "doesn't exist"),
])
def test_judge0_ids_with_no_language_are_refused_with_the_reason(language_id: int,
                                                                 says: str) -> None:
    from cellbox.server.config import ServiceConfig
    from cellbox.server.errors import ApiError
    from cellbox.server.judge0 import SubmissionIn, to_job

    sub = SubmissionIn.model_validate({"source_code": "x", "language_id": language_id})
    with pytest.raises(ApiError, match=re.escape(says)) as e:
        to_job(sub, False, ServiceConfig())
    assert e.value.status == 422


def test_a_judge0_family_id_runs_the_installed_toolchain(worker_boxes: None) -> None:
    from cellbox.server.config import ServiceConfig
    from cellbox.server.jobs import execute
    from cellbox.server.judge0 import SubmissionIn, to_job

    available("c")
    sub = SubmissionIn.model_validate({"source_code": "int main(void) { return 0; }",
                                       "language_id": 48})
    job, _ = to_job(sub, False, ServiceConfig())
    assert job.language == "c" and execute(job.to_dict())["verdict"] == "AC"
