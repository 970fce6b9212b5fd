"""The documentation: the Sphinx site builds with warnings as errors, and every code block of
README.md and of docs/ still does what it shows.

Code blocks are checked as a reader would use them, in page order, in a scratch folder that sees
the repository's committed ``results/``:

* ``python`` blocks run. A block that would train for long says so on the line before it,
  ``<!-- snippet: not run: REASON -->``; it is compiled and its imports are resolved instead.
* ``bash`` blocks are parsed by ``bash -n``; each ``sop-train`` / ``python -m sopdeep`` command is
  parsed by the trainer's own parser and configuration (an unknown flag, preset, method or setting
  fails here), and run when it trains on the in-memory synthetic problem (seconds); ``python -m
  figures`` commands are parsed by the figures' parser; ``python experiments/*.py`` and
  ``benchmarks/*.py`` commands must name an existing script and only options that script declares;
  ``pip install`` extras must exist in pyproject.toml.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import re
import shlex
import subprocess
import sys
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# pages Sphinx generates into docs/ (docs/_ext/sopdocs.py) and its build folder are not sources
GENERATED = ("_build", "generated", "gallery")
DOCUMENTS = [ROOT / "README.md"] + sorted(
    p for p in DOCS.rglob("*.md") if not set(p.relative_to(DOCS).parts) & set(GENERATED))

FENCE = re.compile(r"^(?P<indent> *)(?P<ticks>`{3,})(?P<info>[^`]*)$")
NOT_RUN = re.compile(r"^<!--\s*snippet:\s*not run:\s*(?P<reason>.*?)\s*-->$")
# the README's line budget (issue 35: "at most ~150")
README_MAX_LINES = 160


@dataclass
class Block:
    path: Path
    line: int           # 1-based line of the opening fence
    language: str
    code: str
    not_run: str | None  # the reason given by a "not run" marker, if any

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def code_blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file, with the "not run" marker of the line before each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        ticks = match["ticks"]
        end = i + 1
        while end < len(lines) and lines[end].strip() != ticks:
            end += 1
        marker = NOT_RUN.match(lines[i - 1].strip()) if i else None
        blocks.append(Block(path, i + 1, match["info"].strip(), textwrap.dedent("\n".join(lines[i + 1:end])),
                            marker["reason"] if marker else None))
        i = end + 1
    return blocks


# ------------------------------------------------------------------------------------------------
# the README's shape


def test_readme_is_short_and_holds_one_test_command():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    # .ci/run extracts the one bash block running pytest and runs it verbatim
    with_pytest = [b.code.strip() for b in code_blocks(ROOT / "README.md") if b.language == "bash" and "pytest" in b.code]
    assert with_pytest == ['python -m pip install -c constraints.txt -e ".[test]" && python -m pytest']
    assert "python -m pip install -c constraints.txt . && python -m figures all --out results/figures" in text


def test_readme_results_table_links_to_existing_pages():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("## Results at a glance"):text.index("## Documentation")]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) >= 5
    for row in rows:
        links = re.findall(r"\]\(([^)#]+)", row)
        assert links, f"results row without evidence: {row[:60]}"
        assert all((ROOT / link).is_file() for link in links), row[:60]


def test_every_not_run_marker_gives_its_reason():
    markers = [b for path in DOCUMENTS for b in code_blocks(path) if b.not_run is not None]
    for block in markers:
        # a reason a reader can act on, not an empty excuse
        assert len(block.not_run.split()) >= 3, block.where()
        assert block.language == "python", f"{block.where()}: only python blocks run, so only they are marked"


# ------------------------------------------------------------------------------------------------
# running the blocks

# a block repeated on two pages (README and the guide) runs once; a trainer command once per folder
_ALREADY_RAN: set = set()


def _run_python(block: Block) -> None:
    if block.code in _ALREADY_RAN:
        return
    namespace = {"__name__": "__snippet__"}
    code = compile(block.code, block.where(), "exec")
    with contextlib.redirect_stdout(io.StringIO()):
        exec(code, namespace)
    _ALREADY_RAN.add(block.code)


def _check_imports(block: Block) -> None:
    """A block that is not run still compiles, and everything it imports exists."""
    import ast

    tree = ast.parse(block.code, block.where())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
        elif isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{block.where()}: {node.module} has no {alias.name}"


def _commands(code: str) -> list[list[str]]:
    """The simple commands of a bash block: continuation lines joined, comments dropped, split at
    ``&&``, ``||``, ``;`` and ``|``, leading ``VAR=value`` assignments dropped."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        current: list[str] = []
        for token in list(lexer) + [";"]:
            if token in {"&&", "||", ";", "|", "&"}:
                while current and re.match(r"^[A-Z_]+=", current[0]):
                    current.pop(0)
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(token)
    return commands


def _sopdeep_args(argv: list[str]) -> list[str] | None:
    """The trainer's arguments when ``argv`` runs the trainer (sop-train, python -m sopdeep, torchrun)."""
    if argv[0] == "sop-train":
        return argv[1:]
    for i in range(len(argv) - 1):
        if argv[i] == "-m" and argv[i + 1] == "sopdeep" and argv[0] in {"python", "torchrun"}:
            return argv[i + 2:]
    return None


def _check_sopdeep(block: Block, args: list[str]) -> None:
    from sopdeep.cli import build_parser, build_report_parser, config_from_args, main, report_main

    if args[:1] == ["report"]:  # sop-train report RUN... --out FILE: run it when its runs exist (earlier blocks)
        namespace = build_report_parser().parse_args(args[1:])
        if all((Path(run) / "metrics.jsonl").is_file() for run in namespace.runs):
            with contextlib.redirect_stdout(io.StringIO()):
                assert report_main(args[1:]) == 0, f"{block.where()}: sop-train {' '.join(args)} failed"
        return
    try:
        with contextlib.redirect_stderr(io.StringIO()) as err:
            namespace = build_parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"{block.where()}: sop-train {' '.join(args)}: {err.getvalue().strip()}")
    if namespace.resume or namespace.list_presets:
        return   # the run to resume is not there; the listing needs no configuration
    config = config_from_args(namespace)   # an unknown preset, method or setting raises here
    if config.dataset == "synthetic" and tuple(args) not in _ALREADY_RAN:
        # cheap: the in-memory problem, seconds on a CPU; run it as the reader would, once per
        # command line (README.md, checked first, reads its run folder in a later block)
        _ALREADY_RAN.add(tuple(args))
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert main(args) == 0, f"{block.where()}: sop-train {' '.join(args)} failed"


def _check_script(block: Block, argv: list[str]) -> None:
    script = ROOT / argv[1]
    assert script.is_file(), f"{block.where()}: no script {argv[1]}"
    source = script.read_text(encoding="utf-8")
    # options may be declared by a sibling module the script imports (a shared parser)
    for name in re.findall(r"^from (\w+) import", source, flags=re.M):
        sibling = script.with_name(f"{name}.py")
        if sibling.is_file():
            source += sibling.read_text(encoding="utf-8")
    for token in argv[2:]:
        if token.startswith("--"):
            option = token.split("=")[0]
            assert f'"{option}"' in source, f"{block.where()}: {argv[1]} declares no option {option}"


def _check_pip(block: Block, argv: list[str]) -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for token in argv:
        match = re.fullmatch(r"\.\[(.*)\]", token)
        if match:
            missing = set(match[1].split(",")) - set(extras)
            assert not missing, f"{block.where()}: pyproject.toml has no extra {sorted(missing)}"
    if "-c" in argv:
        assert (ROOT / argv[argv.index("-c") + 1]).is_file()


def _check_bash(block: Block) -> None:
    syntax = subprocess.run(["bash", "-n"], input=block.code, text=True, capture_output=True)
    assert syntax.returncode == 0, f"{block.where()}: {syntax.stderr.strip()}"
    for argv in _commands(block.code):
        sopdeep_args = _sopdeep_args(argv)
        if sopdeep_args is not None:
            _check_sopdeep(block, sopdeep_args)
        elif argv[:3] == ["python", "-m", "figures"]:
            from figures.cli import build_parser

            try:
                with contextlib.redirect_stderr(io.StringIO()) as err:
                    build_parser().parse_args(argv[3:])
            except SystemExit:
                pytest.fail(f"{block.where()}: {' '.join(argv)}: {err.getvalue().strip()}")
        elif argv[0] == "python" and len(argv) > 1 and argv[1].endswith(".py"):
            _check_script(block, argv)
        elif argv[:4] == ["python", "-m", "pip", "install"]:
            _check_pip(block, argv)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_blocks_do_what_they_show(document, tmp_path, monkeypatch):
    blocks = [b for b in code_blocks(document) if b.language in {"python", "bash"}]
    if not blocks:
        pytest.skip(f"{document.name} has no python or bash block")
    # the scratch folder a reader's commands write into; it sees the committed results/ (figures'
    # data files), and the repository's figures/ is importable (pytest's pythonpath)
    (tmp_path / "results").symlink_to(ROOT / "results")
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        if block.language == "bash":
            _check_bash(block)
        elif block.not_run is not None:
            _check_imports(block)
        else:
            _run_python(block)


# ------------------------------------------------------------------------------------------------
# the site


def _sphinx_missing() -> str | None:
    for module in ("sphinx", "numpydoc", "myst_parser", "pydata_sphinx_theme"):
        if importlib.util.find_spec(module) is None:
            return module
    return None


def test_docs_build_without_warnings(tmp_path):
    missing = _sphinx_missing()
    if missing:
        pytest.skip(f"{missing} is not installed: pip install -e '.[docs]' to build the documentation")
    html = tmp_path / "html"
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(html)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-4000:]

    # the gallery shows every registered figure, each page with its picture
    from figures.registry import FIGURES

    for name, module in FIGURES.items():
        page = (html / "gallery" / f"{name}.html").read_text(encoding="utf-8")
        assert f"{module.NAME}.png" in page, name
        assert (html / "_images" / f"{module.NAME}.png").is_file(), name

    # the API reference: every public name of both packages, and nothing else
    import sopdeep
    import soptheory

    public = {f"{package.__name__}.{name}" for package in (sopdeep, soptheory) for name in package.__all__}
    pages = {p.stem for p in (html / "api" / "generated").glob("*.html")}
    assert pages == public
    assert not [p for p in pages if p.split(".")[-1].startswith("_")]
