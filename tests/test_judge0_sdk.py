"""The official Judge0 Python SDK (``judge0`` on PyPI), unchanged, against a real
``cellbox serve``: every public call of the SDK, as its users make them.

The SDK is configured only as its documentation says (a ``Client`` with the server's URL and
auth header, or the JUDGE0_CE_ENDPOINT / JUDGE0_EXTRA_CE_ENDPOINT environment for its
implicit client); nothing of it is patched. Tests whose language id this server does not
offer yet (``needs``) are skipped, saying which id is missing."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime

import httpx
import pytest

from tests.support.service import Server, start_server  # noqa: F401 - fixture

judge0 = pytest.importorskip("judge0", reason="the Judge0 SDK is a test dependency "
                             "(pip install -e '.[test]')")

pytestmark = pytest.mark.service

TOKEN = "s" * 32
AUTH = {"X-Auth-Token": TOKEN}
PY_ECHO = "print(input()[::-1])"
C_SUM = '#include <stdio.h>\nint main(void) { int a, b; scanf("%d %d", &a, &b); ' \
        'printf("%d\\n", a + b); return 0; }\n'


@pytest.fixture(scope="module")
def server(start_server: Callable[..., Server]) -> Server:
    return start_server(f'tokens = ["{TOKEN}"]\nworkers = 2\n')


@pytest.fixture(scope="module")
def client(server: Server) -> judge0.Client:
    # The server reads its toolchains' versions (the languages' names) for a few seconds
    # after it starts, longer than the SDK's 5 s request timeout: wait for them once.
    server.client.get("/languages", headers=dict(AUTH)).raise_for_status()
    return judge0.Client(server.url, headers=dict(AUTH))


def needs(client: judge0.Client, alias: judge0.LanguageAlias) -> None:
    """The server offers the Judge0 CE 1.13.1 id the SDK maps ``alias`` to."""
    assert client.is_language_supported(alias), \
        f"no language id {client.get_language_id(alias)} ({alias.name}) on the server"


# -- the client and the service's metadata ----------------------------------------------------

def test_client_reads_the_service(client: judge0.Client) -> None:
    assert client.version == "1.13.1"
    assert client.get_about()["version"] == "1.13.1"
    config = client.get_config_info()  # the SDK's Config model: every key, typed
    assert isinstance(config, judge0.base_types.Config)
    assert config.max_submission_batch_size == 20 and config.enable_wait_result
    ids = {lang.id for lang in client.get_languages()}
    assert {50, 62, 63, 71, 73, 89} <= ids
    python = client.get_language(71)
    assert python.source_file == "main.py" and python.run_cmd and not python.is_archived
    assert [s["id"] for s in client.get_statuses()] == list(range(1, 15))
    assert [str(s) for s in judge0.Status][:3] == ["In Queue", "Processing", "Accepted"]


def test_wrong_token_fails_to_connect(server: Server) -> None:
    with pytest.raises(RuntimeError, match="Authentication failed"):
        judge0.Client(server.url, headers={"X-Auth-Token": "x" * 32})


# -- run / execute, sync and async ------------------------------------------------------------

@pytest.mark.parametrize("call", ["run", "execute", "sync_run", "sync_execute"])
def test_sync_calls(client: judge0.Client, call: str) -> None:
    result = getattr(judge0, call)(client=client, source_code=PY_ECHO, stdin="abc",
                                   language=judge0.PYTHON)
    assert isinstance(result, judge0.Submission)
    assert result.status == judge0.Status.ACCEPTED and result.stdout == "cba\n"
    assert isinstance(result.token, uuid.UUID | str) and uuid.UUID(str(result.token))
    assert isinstance(result.created_at, datetime) and isinstance(result.finished_at, datetime)
    assert result.finished_at >= result.created_at
    assert isinstance(result.time, float) and isinstance(result.wall_time, float)
    assert result.memory and result.memory > 0 and result.exit_code == 0


@pytest.mark.parametrize("call", ["async_run", "async_execute"])
def test_async_calls_and_wait(client: judge0.Client, call: str) -> None:
    sub = getattr(judge0, call)(client=client, source_code=PY_ECHO, stdin="xy",
                                language=judge0.PYTHON3)
    assert sub.token is not None and not sub.is_done()
    done = judge0.wait(client=client, submissions=sub,
                       retry_strategy=judge0.MaxWaitTime(max_wait_time_sec=60))
    assert done is sub and sub.is_done() and sub.stdout == "yx\n"


@pytest.mark.parametrize("strategy", [judge0.RegularPeriodRetry(0.05),
                                      judge0.MaxRetries(600), judge0.MaxWaitTime(60)])
def test_wait_with_each_retry_strategy(client: judge0.Client,
                                       strategy: judge0.retry.RetryStrategy) -> None:
    subs = judge0.async_run(client=client, submissions=[
        judge0.Submission(source_code=f"print({i})", language=judge0.PYTHON)
        for i in range(3)])
    judge0.wait(client=client, submissions=subs, retry_strategy=strategy)
    assert [s.stdout for s in subs] == ["0\n", "1\n", "2\n"]


def test_submission_objects_and_fields(client: judge0.Client) -> None:
    sub = judge0.Submission(source_code=C_SUM, language=judge0.C, stdin="2 40",
                            expected_output="42", cpu_time_limit=2, memory_limit=65536,
                            compiler_options="-O2", command_line_arguments="x y")
    client.create_submission(sub)
    judge0.wait(client=client, submissions=sub)
    assert sub.status == judge0.Status.ACCEPTED and sub.stdout == "42\n"
    assert sub.cpu_time_limit == 2.0 and sub.memory_limit == 65536
    client.get_submission(sub, fields=["stdout", "status", "language_id"])
    assert sub.stdout == "42\n"
    client.get_submission(sub, fields="time")
    assert isinstance(sub.time, float)


# -- batches and test cases -------------------------------------------------------------------

def test_batches(client: judge0.Client) -> None:
    """More submissions than a batch takes: the SDK splits them into batches of
    max_submission_batch_size (20) and polls them with GET /submissions/batch."""
    subs = [judge0.Submission(source_code=f"print({i} * 2)", language=judge0.PYTHON)
            for i in range(23)]
    results = judge0.run(client=client, submissions=subs)
    assert [r.stdout for r in results] == [f"{i * 2}\n" for i in range(23)]
    client.create_submissions(subs[:2])
    client.get_submissions(subs[:2], fields=["stdout", "status"])
    judge0.wait(client=client, submissions=subs[:2])
    assert [s.stdout for s in subs[:2]] == ["0\n", "2\n"]


@pytest.mark.parametrize("cases", [
    [("ab", "ba"), ("abc", "cba"), ("x", "wrong")],
    [{"input": "ab", "expected_output": "ba"}, {"input": "abc", "expected_output": "cba"},
     {"input": "x", "expected_output": "wrong"}],
    [judge0.TestCase("ab", "ba"), judge0.TestCase("abc", "cba"), judge0.TestCase("x", "wrong")],
])
def test_test_cases(client: judge0.Client, cases: list[object]) -> None:
    results = judge0.run(client=client, source_code=PY_ECHO, language=judge0.PYTHON,
                         test_cases=cases)
    assert [r.status for r in results] == [judge0.Status.ACCEPTED, judge0.Status.ACCEPTED,
                                          judge0.Status.WRONG_ANSWER]


def test_one_test_case_gives_one_submission(client: judge0.Client) -> None:
    result = judge0.run(client=client, source_code=PY_ECHO, language=judge0.PYTHON,
                        test_cases=judge0.TestCase("hello", "olleh"))
    assert isinstance(result, judge0.Submission)
    assert result.status == judge0.Status.ACCEPTED


def test_several_programs_times_several_cases(client: judge0.Client) -> None:
    programs = [judge0.Submission(source_code=PY_ECHO, language=judge0.PYTHON),
                judge0.Submission(source_code="print(input())", language=judge0.PYTHON)]
    results = judge0.run(client=client, submissions=programs,
                         test_cases=[("ab", "ba"), ("cd", "dc")])
    assert [r.status.value for r in results] == [3, 3, 4, 4]


# -- language aliases -------------------------------------------------------------------------

@pytest.mark.parametrize(("alias", "source", "stdin", "out"), [
    ("PYTHON", PY_ECHO, "ab", "ba\n"),
    ("PYTHON3", PY_ECHO, "ab", "ba\n"),
    ("C", C_SUM, "1 2", "3\n"),
    ("C_GCC", C_SUM, "1 2", "3\n"),
    ("C_CLANG", C_SUM, "1 2", "3\n"),
    ("CPP", C_SUM, "1 2", "3\n"),
    ("CPP_GCC", C_SUM, "1 2", "3\n"),
    ("CPP_CLANG", C_SUM, "1 2", "3\n"),
    ("JAVA", "public class Main { public static void main(String[] a) { "
     "System.out.println(\"j\"); } }", "", "j\n"),
    ("JAVASCRIPT", "console.log('js')", "", "js\n"),
    ("RUST", 'fn main() { println!("rs"); }', "", "rs\n"),
    ("BASH", "read x; echo \"$x$x\"", "ab", "abab\n"),
    ("RUBY", "puts gets.strip.reverse", "ab", "ba\n"),
    ("GO", 'package main\nimport "fmt"\nfunc main() { fmt.Println("go") }\n', "", "go\n"),
])
def test_language_aliases(client: judge0.Client, alias: str, source: str, stdin: str,
                          out: str) -> None:
    lang = judge0.LanguageAlias[alias]
    needs(client, lang)
    result = judge0.run(client=client, source_code=source, stdin=stdin, language=lang)
    assert (result.status, result.stdout) == (judge0.Status.ACCEPTED, out), result


# -- multi-file programs ----------------------------------------------------------------------

def project(*files: tuple[str, str]) -> judge0.Filesystem:
    return judge0.Filesystem(content=[judge0.File(name=n, content=c) for n, c in files])


def test_multi_file_program_with_compile_script(client: judge0.Client) -> None:
    fs = project(("compile", "gcc -O2 -o prog main.c util.c\n"), ("run", "./prog \"$@\"\n"),
                 ("main.c", '#include <stdio.h>\nint twice(int);\nint main(void) { int x; '
                  'scanf("%d", &x); printf("%d\\n", twice(x)); }\n'),
                 ("util.c", "int twice(int x) { return 2 * x; }\n"))
    result = judge0.run(client=client, submissions=judge0.Submission(
        source_code="", language=judge0.MULTI_FILE, additional_files=fs, stdin="21"))
    assert (result.status, result.stdout) == (judge0.Status.ACCEPTED, "42\n"), result


def test_multi_file_program_without_compile_script(client: judge0.Client) -> None:
    fs = project(("run", "python3 main.py\n"), ("main.py", "from lib.text import shout\n"
                                                "print(shout(input()))\n"),
                 ("lib/__init__.py", ""), ("lib/text.py", "def shout(s): return s.upper()\n"))
    result = judge0.run(client=client, source_code="", language=judge0.MULTI_FILE,
                        additional_files=fs, stdin="hi", expected_output="HI")
    assert (result.status, result.stdout) == (judge0.Status.ACCEPTED, "HI\n"), result


def test_multi_file_program_compile_error(client: judge0.Client) -> None:
    fs = project(("compile", "gcc -o prog main.c\n"), ("run", "./prog\n"),
                 ("main.c", "int main( {\n"))
    result = judge0.run(client=client, source_code="", language=judge0.MULTI_FILE,
                        additional_files=fs)
    assert result.status == judge0.Status.COMPILATION_ERROR
    assert "error" in (result.compile_output or ""), result


# -- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("source", "language", "status"), [
    ("int main( {", "C", judge0.Status.COMPILATION_ERROR),
    ("import sys; sys.exit(3)", "PYTHON", judge0.Status.RUNTIME_ERROR_NZEC),
    ("while True: pass", "PYTHON", judge0.Status.TIME_LIMIT_EXCEEDED),
    ("int main(void) { volatile int *p = 0; return *p; }", "C",
     judge0.Status.RUNTIME_ERROR_SIGSEGV),
    ("#include <stdlib.h>\nint main(void) { abort(); }", "C",
     judge0.Status.RUNTIME_ERROR_SIGABRT),
])
def test_failure_statuses(client: judge0.Client, source: str, language: str,
                          status: judge0.Status) -> None:
    result = judge0.run(client=client, source_code=source, cpu_time_limit=0.5,
                        language=judge0.LanguageAlias[language])
    assert result.status == status, result
    if status == judge0.Status.COMPILATION_ERROR:
        assert "error" in (result.compile_output or "")
    else:
        assert result.message, result  # why the run ended, as isolate words it


def test_unsupported_language_is_refused_by_the_sdk(client: judge0.Client) -> None:
    with pytest.raises(RuntimeError, match="does not support language"):
        judge0.run(client=client, source_code="x", language=999)


def test_invalid_submission_is_an_http_error(client: judge0.Client) -> None:
    """A limit above the server's cap: 422 with Judge0's field errors."""
    with pytest.raises(httpx.HTTPStatusError) as e:
        judge0.run(client=client, source_code="print(1)", language=judge0.PYTHON,
                   cpu_time_limit=1000)
    assert e.value.response.status_code == 422
    assert e.value.response.json() == {
        "cpu_time_limit": ["must be less than or equal to 15.0"]}


# -- the implicit client ----------------------------------------------------------------------

@pytest.fixture
def implicit_env(server: Server) -> Iterator[None]:
    """The SDK's own configuration for a self-hosted server: both flavors point here, so
    the SDK never reaches for its cloud clients."""
    names = ("JUDGE0_CE_ENDPOINT", "JUDGE0_CE_AUTH_HEADERS", "JUDGE0_EXTRA_CE_ENDPOINT",
             "JUDGE0_EXTRA_CE_AUTH_HEADERS")
    saved = {n: os.environ.get(n) for n in names}
    os.environ.update(dict(zip(names, (server.url, json.dumps(AUTH)) * 2, strict=True)))
    yield
    for n, v in saved.items():
        if v is None:
            os.environ.pop(n, None)
        else:
            os.environ[n] = v


def test_implicit_client(implicit_env: None) -> None:
    client = judge0.get_client(judge0.CE)
    assert isinstance(client, judge0.Client) and client.version == "1.13.1"
    result = judge0.run(source_code=PY_ECHO, stdin="ok", language=judge0.PYTHON)
    assert result.stdout == "ko\n"
