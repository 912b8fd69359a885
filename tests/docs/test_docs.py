"""The README's and docs/' command blocks and snippets run as written, and the site builds.

Every ```bash, ```console and ```python block of ``README.md`` and ``docs/*.md`` runs, in page
order, in a fresh temporary directory per page that holds a copy of the repository's
``recipes/`` (so ``--config recipes/quickstart.yaml`` resolves). The page's ``HOME`` is a fresh
folder too (keys, caches and gate verdicts start empty); ``PATH`` starts with this interpreter's
``bin/`` (``secure-train``), and ``HF_HUB_OFFLINE=1`` makes any download fail.

- ``bash``: run with ``bash -euo pipefail``; the environment a block leaves (``export X=...``)
  is the next block's on the same page.
- ``console``: the lines starting with ``$ `` run as a bash block; the other lines are output
  and are not checked.
- ``python``: run as a script by this interpreter, in the page's directory with its environment.
  Blocks do not share Python state: each snippet is complete.

A block fails the page when it exits non-zero; the error names the page, the line and the output.

Directives: HTML comments (invisible on the rendered page) on the lines right before a block's
opening fence, one per comment:

- ``<!-- docs-test: skip (REASON) -->``: do not run the block; the reason is required. Rare:
  benchmark runs, data under ``../shared``, a pretrained model path, package installs.
- ``<!-- docs-test: env NAME=VALUE ... -->``: extra environment variables for this block.
- ``<!-- docs-test: replace "OLD" "NEW" -->``: run the block with OLD replaced by NEW (tiny
  settings: fewer epochs); OLD must occur in the block.

A directive before a block that is not run (```yaml, ```text), an unknown directive or a
``replace`` whose OLD is not in the block fails the page, so directives cannot go stale silently.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytestmark = pytest.mark.docs

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RUN_LANGS = {"bash", "console", "python"}
BLOCK_TIMEOUT_S = 1200  # generous: CI machines are shared

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,})(?P<lang>[\w+-]*)[^`]*$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<body>.*?)\s*-->\s*$")


class DocsError(AssertionError):
    """A block failed, or a directive is malformed."""


@dataclass
class Block:
    """A fenced block of a page: language, code, first code line (1-based) and directives."""

    page: str
    line: int
    lang: str
    code: str
    skip: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def runs(self) -> bool:
        return self.lang in RUN_LANGS and self.skip is None


def _apply(block: Block, directive: str) -> None:
    where = f"{block.page}:{block.line}"
    verb, _, rest = directive.partition(" ")
    if verb == "skip":
        m = re.fullmatch(r"\((.+)\)", rest.strip())
        if not m or not m.group(1).strip():
            raise DocsError(f"{where}: 'skip' needs a reason in parentheses: {directive!r}")
        block.skip = m.group(1).strip()
    elif verb == "env":
        pairs = shlex.split(rest)
        if not pairs or not all("=" in p for p in pairs):
            raise DocsError(f"{where}: 'env' takes NAME=VALUE pairs: {directive!r}")
        block.env.update(p.split("=", 1) for p in pairs)  # type: ignore[misc]
    elif verb == "replace":
        args = shlex.split(rest)
        if len(args) != 2:
            raise DocsError(f"{where}: 'replace' takes two quoted strings: {directive!r}")
        old, new = args
        if old not in block.code:
            raise DocsError(f"{where}: 'replace': {old!r} is not in the block")
        block.code = block.code.replace(old, new)
    else:
        raise DocsError(f"{where}: unknown docs-test directive {directive!r}")


def extract_blocks(text: str, page: str = "<page>") -> list[Block]:
    """Every fenced block of a Markdown page, with the directives right before it applied."""
    lines = text.splitlines()
    blocks: list[Block] = []
    pending: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        d = _DIRECTIVE.match(line)
        if d:
            pending.append((i + 1, d.group("body")))
            i += 1
            continue
        m = _FENCE.match(line)
        if not m:
            if pending and line.strip():
                raise DocsError(f"{page}:{pending[0][0]}: a docs-test directive must come right before a block")
            i += 1
            continue
        indent, fence, lang = m.group("indent"), m.group("fence"), m.group("lang").lower()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not re.match(rf"^[ \t]*{fence}\s*$", lines[j]):
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        if j == len(lines):
            raise DocsError(f"{page}:{i + 1}: unclosed code fence")
        block = Block(page, i + 2, lang, "\n".join(body) + "\n")
        if pending and lang not in RUN_LANGS:
            raise DocsError(f"{page}:{pending[0][0]}: docs-test directive before a ```{lang} block, which is not run")
        for _, directive in pending:
            _apply(block, directive)
        pending = []
        blocks.append(block)
        i = j + 1
    if pending:
        raise DocsError(f"{page}:{pending[0][0]}: a docs-test directive at the end of the page")
    return blocks


def _console_commands(code: str) -> str:
    return "\n".join(line[2:] for line in code.splitlines() if line.startswith("$ ")) + "\n"


def _read_env(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in path.read_bytes().decode("utf-8", "replace").split("\0"):
        name, sep, value = item.partition("=")
        if sep and name:
            env[name] = value
    return env


def base_env(home: Path) -> dict[str, str]:
    """The environment a page starts from: a fresh HOME, this interpreter's bin first, offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECURE_TRAIN_", "PYTEST_"))}
    env.update(
        HOME=str(home),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        HF_HUB_OFFLINE="1",
        WANDB_MODE="offline",
        PYTHONUNBUFFERED="1",
    )
    return env


def run_blocks(blocks: list[Block], workdir: Path, env: dict[str, str]) -> list[Block]:
    """Run the blocks in order in ``workdir``; return the skipped ones; raise on the first failure."""
    skipped = []
    env = dict(env)
    env_file = workdir.parent / f".{workdir.name}.env"
    for block in blocks:
        if block.lang not in RUN_LANGS:
            continue
        if block.skip is not None:
            skipped.append(block)
            continue
        block_env = {**env, **block.env}
        if block.lang == "python":
            cmd = [sys.executable, "-c", block.code]
        else:
            code = _console_commands(block.code) if block.lang == "console" else block.code
            trap = f"trap 'env -0 > {shlex.quote(str(env_file))}' EXIT\n"
            cmd = ["bash", "-euo", "pipefail", "-c", trap + code]
        # A session of its own, so a timeout ends the block's commands too, not only its shell.
        with subprocess.Popen(
            cmd, cwd=workdir, env=block_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True,
        ) as proc:
            try:
                stdout, stderr = proc.communicate(timeout=BLOCK_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                where = f"{block.page}:{block.line}"
                raise DocsError(f"{where}: ```{block.lang} block timed out after {BLOCK_TIMEOUT_S} s") from None
        if proc.returncode != 0:
            out = (stdout + stderr)[-4000:]
            raise DocsError(
                f"{block.page}:{block.line}: ```{block.lang} block exited {proc.returncode}\n"
                f"--- block ---\n{block.code}--- output (tail) ---\n{out}"
            )
        if block.lang != "python" and env_file.exists():
            env = {k: v for k, v in _read_env(env_file).items() if k not in block.env or k in env}
    return skipped


# -- the extractor and runner can fail ---------------------------------------------------------

SYNTHETIC_PAGE = """\
# A page

```bash
export GREETING=hello
echo "$GREETING" > greeting.txt
```

<!-- docs-test: skip (shows a command that cannot run here) -->
```bash
exit 3
```

```yaml
not: run
```

<!-- docs-test: env EXTRA=1 -->
```python
import os
from pathlib import Path
assert os.environ["GREETING"] == "hello" and os.environ["EXTRA"] == "1"
assert Path("greeting.txt").read_text() == "hello\\n"
```

<!-- docs-test: replace "exit 1" "true" -->
```console
$ echo shown
shown
$ exit 1
```

```bash
test "$GREETING" = hello
false
echo never
```
"""


def test_extractor_runs_blocks_in_order_and_fails_on_a_failing_block(tmp_path: Path) -> None:
    blocks = extract_blocks(SYNTHETIC_PAGE, "synthetic.md")
    assert [b.lang for b in blocks] == ["bash", "bash", "yaml", "python", "console", "bash"]
    assert blocks[1].skip == "shows a command that cannot run here"
    assert blocks[3].env == {"EXTRA": "1"} and "true" in blocks[4].code
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(DocsError, match=r"synthetic\.md:33: ```bash block exited 1") as err:
        run_blocks(blocks, work, base_env(tmp_path))
    assert "never" not in str(err.value).split("--- output")[1]
    assert (work / "greeting.txt").read_text() == "hello\n"
    # without the failing last block, the page passes and reports the skip
    assert [b.line for b in run_blocks(blocks[:-1], work, base_env(tmp_path))] == [10]


@pytest.mark.parametrize(
    ("page", "message"),
    [
        ('<!-- docs-test: skip -->\n```bash\ntrue\n```\n', "needs a reason"),
        ('<!-- docs-test: replace "absent" "x" -->\n```bash\ntrue\n```\n', "is not in the block"),
        ("<!-- docs-test: frobnicate -->\n```bash\ntrue\n```\n", "unknown docs-test directive"),
        ("<!-- docs-test: skip (why) -->\n```yaml\na: 1\n```\n", "which is not run"),
        ("<!-- docs-test: skip (why) -->\n\nsome text\n```bash\ntrue\n```\n", "right before a block"),
        ("```bash\ntrue\n", "unclosed code fence"),
    ],
)
def test_malformed_directives_fail(page: str, message: str) -> None:
    with pytest.raises(DocsError, match=message):
        extract_blocks(page, "bad.md")


def test_python_block_failure_names_the_line(tmp_path: Path) -> None:
    blocks = extract_blocks("text\n\n```python\nraise SystemExit('boom')\n```\n", "p.md")
    (tmp_path / "w").mkdir()
    with pytest.raises(DocsError, match=r"p\.md:4: ```python block exited 1(.|\n)*boom"):
        run_blocks(blocks, tmp_path / "w", base_env(tmp_path))


# -- the real pages ------------------------------------------------------------------------------


def _fenced(page: Path, lang: str) -> list[str]:
    return [b.code for b in extract_blocks(page.read_text(encoding="utf-8"), page.name) if b.lang == lang]


def _commands(code: str) -> list[str]:
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in code.replace("\\\n", " ").splitlines()]
    return [" ".join(line.split()) for line in lines if line and not line.startswith("#")]


def test_readme_install_and_test_commands_agree_with_ci() -> None:
    """The README's test command is the one `.ci/run` runs; its extras and torch pin exist."""
    ci = {" ".join(c.split()) for c in _commands((REPO / ".ci" / "run").read_text())}
    readme = [c for code in _fenced(REPO / "README.md", "bash") for c in _commands(code)]
    test = [c for c in readme if c.startswith("ruff check")]
    assert test and all(c in ci for c in test), f"README test command not run by .ci/run: {test}"
    pyproject = (REPO / "pyproject.toml").read_text()
    extras = [e for c in readme for m in re.findall(r'pip install -e "\.\[([\w,-]+)\]"', c) for e in m.split(",")]
    assert extras, "README.md has no pip install -e \".[...]\" line"
    for extra in extras:
        assert re.search(rf"^{re.escape(extra)} = \[", pyproject, re.M), f"extra {extra!r} is not in pyproject.toml"
    pins = [m for c in readme for m in re.findall(r"pip install torch==([\w.+]+)", c)]
    constraints = REPO / "constraints.txt"
    if pins and constraints.exists():
        pinned = re.findall(r"^torch==([\w.+]+)", constraints.read_text(), re.M)
        assert not pinned or pinned == pins[:1], f"README pins torch {pins[0]}, constraints.txt {pinned}"


@pytest.mark.slow
@pytest.mark.timeout(2 * BLOCK_TIMEOUT_S)
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_page_blocks_run(page: Path, tmp_path: Path) -> None:
    blocks = extract_blocks(page.read_text(encoding="utf-8"), page.relative_to(REPO).as_posix())
    if not any(b.lang in RUN_LANGS for b in blocks):
        pytest.skip(f"{page.name}: no bash / console / python block")
    work, home = tmp_path / "work", tmp_path / "home"
    home.mkdir()
    shutil.copytree(REPO / "recipes", work / "recipes")
    skipped = run_blocks(blocks, work, base_env(home))
    for block in skipped:
        print(f"skipped {block.page}:{block.line}: {block.skip}")


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (the docs extra)")
    pytest.importorskip("mkdocstrings", reason="mkdocstrings is not installed (the docs extra)")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"), "-d", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "index.html").exists() and (tmp_path / "benchmarks" / "index.html").exists()
