"""The docs cannot drift: every relative link in README.md and docs/ resolves (file and
anchor), and every cellbox command in a shell code block parses with the real parsers."""

from __future__ import annotations

import os
import re
import shlex
import tomllib
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
