"""A program given as a file or a directory of files (a submission, a validator), its language
told by the file extensions as problemtools and DOMjudge tell it, made into a ``Language``
that builds exactly those files.

A profile names one source file (``main.cpp``, ``Main.java``). For a program of several files,
or whose main file has another name, its compile command takes every source file of the
language in place of the profile's one, and the run command names the main file (Java and
Scala: the main class, named after its file as Kattis does) in place of the profile's. A
profile whose commands name the source only inside a longer argument (Common Lisp's
``--eval``) gets the main file under the profile's own name: a file name never becomes code.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import glob
import os
import re
from dataclasses import dataclass

from cellbox.errors import UsageError
from cellbox.languages import Language, languages

# (language, the files it takes), highest priority first: problemtools' languages.yaml order.
# A name with no shipped profile here is reported as unavailable, not guessed at.
EXTENSIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cpp", ("*.cc", "*.C", "*.cpp", "*.cxx", "*.c++")),
    ("c", ("*.c",)),
    ("python2", ()),  # only by a python2 shebang, below
    ("python", ("*.py", "*.py3")),
    ("java", ("*.java",)),
    ("csharp", ("*.cs",)),
    ("go", ("*.go",)),
    ("rust", ("*.rs",)),
    ("javascript", ("*.js",)),
    ("kotlin", ("*.kt",)),
    ("haskell", ("*.hs",)),
    ("ocaml", ("*.ml",)),
    ("php", ("*.php",)),
    ("ruby", ("*.rb",)),
    ("scala", ("*.scala",)),
    ("commonlisp", ("*.lisp", "*.cl")),
    ("prolog-swi", ("*.pl",)),  # problemtools runs .pl with SWI-Prolog
)
PYTHON2 = re.compile(rb"^#!.*python2\b")
NO_PROFILE = {"python2": ": Debian 12 packages neither Python 2 nor PyPy for Python 2"}  # why
# How the JVM languages' main file is told among several: it defines main.
MAIN_DEFINED = {"java": rb"static\s+(public\s+)?void\s+main\s*\(",
                "scala": rb"\bdef\s+main\s*\(|\bextends\s+App\b"}
FROM_ENTRY = ("rust", "python", "javascript")  # their compilers follow modules from the main file
SOURCE_CAP = 16 << 20  # bytes of source files a program may have


@dataclass(frozen=True)
class Program:
    name: str  # the file or directory name
    language: Language  # rewritten to build this program's files
    files: dict[str, bytes]  # every file, by name (a directory's files, flattened)
    entry: str  # the main file

    @property
    def source(self) -> bytes:
        return self.files[self.entry]

    def others(self) -> dict[str, bytes]:
        return {n: d for n, d in self.files.items() if n != self.entry}


def _read_files(path: str) -> dict[str, bytes]:
    if os.path.isfile(path):
        names = [path]
    elif os.path.isdir(path):
        names = [os.path.join(root, f) for root, _, fs in os.walk(path) for f in fs]
    else:
        raise UsageError(f"Program {path!r} is neither a file nor a directory")
    files: dict[str, bytes] = {}
    total = 0
    for full in sorted(names):
        name = os.path.basename(full)
        if name.startswith(".") or name in files:
            continue
        with open(full, "rb") as f:
            files[name] = f.read(SOURCE_CAP + 1)
        total += len(files[name])
        if total > SOURCE_CAP:
            raise UsageError(f"Program {path!r} has more than {SOURCE_CAP >> 20} MiB of files")
    if not files:
        raise UsageError(f"Program {path!r} has no files")
    return files


def detect(files: dict[str, bytes]) -> tuple[str, list[str]]:
    """(language name, its source files, sorted) by extension and priority."""
    for name, patterns in EXTENSIONS:
        if name == "python2":
            found = [f for f in files if f.endswith(".py") and PYTHON2.match(files[f])]
        else:
            found = [f for f in files if any(fnmatch.fnmatchcase(f, p) for p in patterns)]
        if found:
            return name, sorted(found)
    raise UsageError(f"Cannot tell the language of {', '.join(sorted(files))} from the file "
                     "extensions (docs/problems.md lists them); cellbox judge takes --lang")


def load_program(path: str, lang_name: str | None = None) -> Program:
    """A program from a file or a directory; ``lang_name`` overrides the detection."""
    files = _read_files(path.rstrip("/"))
    detected, sources = detect(files)
    name = lang_name or detected
    if name not in languages():
        raise UsageError(f"cellbox has no {name} language profile{NO_PROFILE.get(name, '')} "
                         "(cellbox languages lists those it has)")
    lang = languages()[name]
    ext = lang.source.rpartition(".")[2]
    sources = sorted(f for f in files if f.rpartition(".")[2] == ext) or sources
    entry = _entry(lang, files, sources, path)
    others = sorted(set(files) - {entry})
    return Program(os.path.basename(path.rstrip("/")), _rewrite(lang, entry, sources, others),
                   files, entry)


def _entry(lang: Language, files: dict[str, bytes], sources: list[str], path: str) -> str:
    if len(sources) == 1:
        return sources[0]
    if lang.source in sources:
        return lang.source
    named_main = [f for f in sources if f.lower().startswith("main.")]  # problemtools' rule
    if len(named_main) == 1:
        return named_main[0]
    if lang.name in MAIN_DEFINED:
        mains = [f for f in sources if re.search(MAIN_DEFINED[lang.name], files[f])]
        if len(mains) == 1:
            return mains[0]
    if _compiles_all(lang) and lang.source not in lang.run:
        return sources[0]  # every file is compiled and the run names none: any will do
    raise UsageError(f"Program {path!r} has {len(sources)} {lang.titled(None)} files and none is "
                     f"the main one: name it {lang.source}")


def _compiles_all(lang: Language) -> bool:
    return lang.source in lang.compile and lang.name not in FROM_ENTRY


def _rewrite(lang: Language, entry: str, sources: list[str], others: list[str]) -> Language:
    """``lang`` building ``sources`` with ``entry`` as the main file. The ``others`` go into
    the run's box too, as in problemtools' directory: a program may read them as it runs
    (Common Lisp's ``load``)."""
    if others:
        lang = dataclasses.replace(lang, artifacts=lang.artifacts + tuple(
            glob.escape(f) for f in others))
    if sources == [lang.source] or lang.source not in lang.compile + lang.run:
        return lang
    entry_stem = entry.rpartition(".")[0]
    listed = sources if _compiles_all(lang) else [entry]
    compile_argv: list[str] = []
    for a in lang.compile:
        compile_argv += listed if a == lang.source else [a]
    run = tuple(entry if a == lang.source else _main_class(lang, entry_stem, a)
                for a in lang.run)
    return dataclasses.replace(lang, source=entry, compile=tuple(compile_argv), run=run)


def _main_class(lang: Language, entry_stem: str, arg: str) -> str:
    """A run command's argument, the main class renamed after the main file where the JVM
    runs one: Java's and Scala's is the file's name, Kotlin's the file's name capitalised
    plus Kt."""
    stem = lang.source.rpartition(".")[0]
    if lang.name in MAIN_DEFINED and arg == stem:
        return entry_stem
    if lang.name == "kotlin" and arg == stem.capitalize() + "Kt":
        return entry_stem[:1].upper() + entry_stem[1:] + "Kt"
    return arg
