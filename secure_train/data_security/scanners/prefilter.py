"""One pass over a text that says which of many regular expressions *could* match it.

The scanners keep their rules as plain ``re`` patterns (they produce the findings: spans, rule
names, details). :class:`Prefilter` compiles all of a scanner's patterns into one multi-pattern
database and scans a text once; a pattern it does not report cannot match, so the scanner skips
its ``re`` search. The answer is a superset of the patterns that match, never a subset, so the
findings are exactly those of running every pattern:

- ``hyperscan``: every pattern compiled with ``HS_FLAG_PREFILTER`` (Hyperscan approximates
  constructs it cannot run exactly, such as lookarounds, by something that matches more).
- ``re2``: an ``RE2::Set`` of the patterns with their lookarounds removed (which only widens them).
- ``re``: no prefilter (every pattern runs); used when neither package is installed.

Equal semantics need texts on which both engines agree: the prefilter only answers for ASCII
texts without the control characters ``\\v \\f \\x1c-\\x1f`` (Python's ``\\s`` takes those,
Hyperscan's and RE2's do not all); for any other text :meth:`Prefilter.candidates` returns
``None`` and every pattern runs. ``tests/data_security/test_fast_scan.py`` compares the two paths.
``engine="auto"`` takes Hyperscan, else RE2, else ``re``.

Batches (:meth:`Prefilter.segment_hits`, what
:class:`~secure_train.data_security.scanners.batch.BatchScanner` runs): Hyperscan scans many
texts joined by :data:`_SEP` in one call with a second database of the patterns widened for
it (:func:`_widen`: lookarounds removed, ``^``/``$`` per line) and every match reported, each
match going to the text that holds its end; a non-ASCII text is scanned as its
:meth:`Prefilter.shadow` (an ASCII stand-in on which every pattern still matches). On the
100 MB SST-2 corpus of ``python -m benchmarks.scanner_quality --sections speed`` the scan
(injection + unicode + PII, reading and custody hashing included) ran at 11.4 MB/s per core
with Hyperscan and 8.8 with RE2 (the reference ``re`` path: 0.26), same findings; Hyperscan
takes ~1.9 s of CPU once per process to compile its databases, RE2 compiles lazily.

Example (``engine="auto"`` without hyperscan or RE2 installed is ``re``: ``candidates`` is ``None``):
    >>> pf = Prefilter([r"\\bignore\\b", r"(?<!\\d)\\d{3}-\\d{4}"], engine="auto")
    >>> pf.engine == "re" or sorted(pf.candidates("please ignore it")) == [0]
    True
    >>> pf.engine == "re" or sorted(pf.candidates("call 555-1234 now")) == [1]
    True
    >>> pf.candidates("naïve") is None  # not ASCII: the caller runs every pattern
    True
"""

from __future__ import annotations

import bisect
import functools
import itertools
import re
from collections.abc import Callable, Sequence

try:  # Python >= 3.11
    from re import _compiler as sre_compile  # type: ignore[attr-defined]
    from re import _constants as sre_constants  # type: ignore[attr-defined]
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    import sre_compile  # type: ignore[no-redef]
    import sre_constants  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

from secure_train.core.errors import ConfigError

__all__ = ["ENGINES", "Prefilter", "available_engine"]

ENGINES = ("auto", "hyperscan", "re2", "re")
_UNSAFE = "[\\x0b\\x0c\\x1c-\\x1f]"  # whitespace to Python's \s, not to Hyperscan's / RE2's
_LOOKAROUND = re.compile(r"\(\?<?[!=](?:[^()\\]|\\.)*\)")


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def available_engine(engine: str = "auto") -> str:
    """The engine ``engine`` resolves to: ``auto`` -> ``hyperscan`` if importable, else ``re2``, else ``re``.

    Raises:
        ConfigError: an unknown engine, or one whose package is not installed.
    """
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "auto":
        return "hyperscan" if _has("hyperscan") else "re2" if _has("re2") else "re"
    if engine != "re" and not _has(engine):
        raise ConfigError(f"engine {engine!r} needs the {'google-re2' if engine == 're2' else engine} package")
    return engine


def _hs_flags(pyflags: int) -> int:
    import hyperscan as hs

    f = hs.HS_FLAG_PREFILTER | hs.HS_FLAG_SINGLEMATCH | hs.HS_FLAG_ALLOWEMPTY
    for bit, flag in ((re.MULTILINE, hs.HS_FLAG_MULTILINE), (re.IGNORECASE, hs.HS_FLAG_CASELESS), (re.DOTALL, hs.HS_FLAG_DOTALL)):  # noqa: E501
        if pyflags & bit:
            f |= flag
    return f


def _re2_source(source: str, pyflags: int) -> str:
    prefix = "".join(f for f, bit in (("m", re.MULTILINE), ("i", re.IGNORECASE), ("s", re.DOTALL)) if pyflags & bit)
    return (f"(?{prefix})" if prefix else "") + _LOOKAROUND.sub("", source)  # no lookaround: a wider pattern


class _Database:
    """One compiled multi-pattern database; ``match(bytes)`` -> ids that may match. A pattern the
    engine cannot compile is reported on every text (``always``), so it always runs."""

    def __init__(self, engine: str, patterns: Sequence[tuple[str, int]], batch: bool = False) -> None:
        self.engine = engine
        self.batch = batch
        self.unsafe = len(patterns)
        entries = [*patterns, (_UNSAFE, 0)]
        widened = [_widen(src, f) if batch else (src, f) for src, f in entries]  # batch: see _widen
        entries = [w or e for w, e in zip(widened, entries, strict=True)]
        self.db: object = None
        self.ids: list[int] = []
        # Python reads "{,n}" as "{0,n}", Hyperscan and RE2 as literal text: such a pattern always
        # runs, as does one a batch scan cannot widen
        portable = [i for i, (src, _) in enumerate(entries) if "{," not in src and widened[i] is not None]
        if not self._build(entries, portable):  # leave out what the engine rejects
            self._build(entries, [i for i in portable if self._compiles(entries[i])])
        self.always = frozenset(range(len(patterns))) - frozenset(self.ids)
        if self.unsafe not in self.ids:  # cannot tell the unsafe texts apart: answer for none
            self.always = frozenset([*range(len(patterns)), self.unsafe])

    def _compiles(self, entry: tuple[str, int]) -> bool:
        try:
            self._compile([entry], [0])
        except Exception:  # noqa: BLE001 -- the engines raise their own error types
            return False
        return True

    def _build(self, entries: Sequence[tuple[str, int]], ids: Sequence[int]) -> bool:
        try:
            self.db = self._compile([entries[i] for i in ids], list(ids))
        except Exception:  # noqa: BLE001
            return False
        self.ids = list(ids)
        return True

    def _compile(self, entries: Sequence[tuple[str, int]], ids: list[int]) -> object:
        if self.engine == "hyperscan":
            import hyperscan as hs

            db = hs.Database(mode=hs.HS_MODE_BLOCK)
            db.compile(
                expressions=[src.encode() for src, _ in entries],
                ids=ids,
                elements=len(entries),
                flags=[_hs_flags(f) & ~hs.HS_FLAG_SINGLEMATCH if self.batch else _hs_flags(f) for _, f in entries],
            )
            return db
        import re2

        options = re2.Options()
        options.max_mem = 256 << 20
        rset = re2.Set.SearchSet(options)
        for src, f in entries:
            rset.Add(_re2_source(src, f))
        rset.Compile()
        return rset

    def match(self, data: bytes) -> set[int]:
        if self.db is None:
            return set(self.always)
        if self.engine == "re2":
            return {self.ids[i] for i in self.db.Match(data) or ()} | self.always  # type: ignore[attr-defined]
        hits = set(self.always)

        def on_match(pid: int, start: int, end: int, flags: int, context: object) -> None:
            hits.add(pid)

        self.db.scan(data, match_event_handler=on_match)  # type: ignore[attr-defined]
        return hits

    def match_segments(self, data: bytes, starts: Sequence[int]) -> dict[int, set[int]]:
        """Hyperscan batch database over segments joined by :data:`_SEP` (segment ``k`` starts at
        ``starts[k]``): ``{k: ids that may match segment k}``; a segment not listed matches none.
        A match is the segment's that holds its last character (a separator belongs to the
        segment before it: a match that ends by reading the line break is still that segment's)."""
        hits: dict[int, set[int]] = {}
        if self.always:
            hits = {k: set(self.always) for k in range(len(starts))}
        if self.db is None:
            return hits

        def on_match(pid: int, start: int, end: int, flags: int, context: object) -> None:
            k = bisect.bisect_right(starts, end - 1) - 1
            found = hits.get(k)
            if found is None:
                hits[k] = {pid}
            else:
                found.add(pid)

        self.db.scan(data, match_event_handler=on_match)  # type: ignore[attr-defined]
        return hits


@functools.cache
def _compiled(engine: str, patterns: tuple[tuple[str, int], ...], batch: bool = False) -> _Database:
    return _Database(engine, patterns, batch)


def _widen(source: str, flags: int) -> tuple[str, int] | None:
    """The pattern a batch scan runs for ``source``: every lookaround removed (a wider pattern),
    ``[\\s\\S]`` kept inside its segment (``[^\\x00]``: no segment holds a NUL), ``^`` and ``$``
    per line (a segment's ends are line ends in the joined string). ``None`` when that cannot
    keep every match of a lone text (``\\A``, ``\\Z``, a lookaround left inside a group)."""
    while (stripped := _LOOKAROUND.sub("", source)) != source:
        source = stripped
    source = source.replace(r"[\s\S]", r"[^\x00]")
    banned = {sre_constants.AT_BEGINNING_STRING, sre_constants.AT_END_STRING}

    def ok(node: object) -> bool:
        if isinstance(node, tuple) and len(node) == 2 and node[0] in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            return False
        if isinstance(node, tuple) and len(node) == 2 and node[0] is sre_constants.AT:
            return node[1] not in banned
        if isinstance(node, (list, tuple)) or type(node).__name__ == "SubPattern":
            return all(ok(child) for child in node)  # type: ignore[attr-defined]
        return True

    try:
        if not ok(list(sre_parse.parse(source, flags))):
            return None
    except re.error:
        return None
    return source, flags | re.MULTILINE


_SHADOWS = ("_", "\x7f", " ", "0", "a", "A")  # ASCII stand-ins a non-ASCII character may take
_WORD = re.compile(r"\w")


def _atoms(sources: Sequence[tuple[str, int]]) -> list[re.Pattern[str]] | None:
    """Every one-character element (literal, class, ``.``) of the patterns, each compiled alone
    with the flags in force where it stands; lookarounds left out (a batch scan removes them).
    ``None`` for a construct this does not know (a backreference, a conditional)."""
    c = sre_constants
    found: dict[tuple[str, int], tuple[object, int]] = {}
    repeats = {c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", c.MAX_REPEAT)}

    def walk(items: object, flags: int) -> bool:
        for op, av in items:  # type: ignore[attr-defined]
            if op in (c.LITERAL, c.NOT_LITERAL, c.IN, c.ANY):
                found.setdefault((repr((op, av)), flags), ((op, av), flags))
            elif op is c.SUBPATTERN:
                if not walk(av[3], (flags | av[1]) & ~av[2]):
                    return False
            elif op is c.BRANCH:
                if not all(walk(alt, flags) for alt in av[1]):
                    return False
            elif op in repeats:
                if not walk(av[2], flags):
                    return False
            elif op is getattr(c, "ATOMIC_GROUP", None):
                if not walk(av, flags):
                    return False
            elif op not in (c.AT, c.ASSERT, c.ASSERT_NOT):
                return False
        return True

    for src, flags in sources:
        try:
            parsed = sre_parse.parse(src, flags)
        except re.error:
            continue  # a pattern Python rejects never matches
        if not walk(parsed, parsed.state.flags):
            return None
    compiled = []
    for node, flags in found.values():
        state = sre_parse.State()
        state.flags = flags | re.UNICODE
        compiled.append(sre_compile.compile(sre_parse.SubPattern(state, [node]), flags | re.UNICODE))
    return compiled


_SEP = "\n\x00\n"
"""Between the texts of a batch scan: a line break at each side (``^``, ``$``, ``\\b`` and ``\\W``
see a text's ends as they see a lone text's) and a NUL (no text in the scan holds one)."""


class Prefilter:
    """Which of ``patterns`` could match a text, in one scan (see the module docstring).

    Args:
        patterns: regular expression sources, or ``(source, re flags)`` pairs (``re.MULTILINE``,
            ``re.IGNORECASE`` and ``re.DOTALL`` carry over; inline ``(?i:...)`` works in all engines).
        engine: one of :data:`ENGINES`.
        ascii_only: indices of patterns that only ASCII texts are asked about (tests written for
            ASCII text): :meth:`shadow` does not keep their matches, and :meth:`segment_hits`
            answers them as possible for every non-ASCII text.

    Databases are compiled once per process and pattern list (Hyperscan takes a few seconds
    for the injection rules).
    """

    def __init__(
        self, patterns: Sequence[str | tuple[str, int]], engine: str = "auto", *, ascii_only: Sequence[int] = ()
    ) -> None:
        self.engine = available_engine(engine)
        self.patterns = tuple((p, 0) if isinstance(p, str) else (p[0], int(p[1])) for p in patterns)
        self.ascii_only = frozenset(ascii_only)
        self._db: _Database | None = None
        self._batch_db: _Database | None = None
        self._atoms: list[re.Pattern[str]] | None = None
        self._shadows: dict[str, str | None] = {}

    def __getstate__(self) -> dict[str, object]:
        """Pickled without the compiled databases (Ray / multiprocessing workers compile their own)."""
        return {**self.__dict__, "_db": None, "_batch_db": None, "_atoms": None, "_shadows": {}}

    def shadow(self, text: str) -> str | None:
        """An ASCII stand-in for ``text`` (one character for each) on which every pattern, with
        its lookarounds removed, matches wherever it matches ``text``: each non-ASCII character
        becomes the first of a few ASCII ones that is a word character exactly when it is one
        (``\\b``) and matches every literal, class and ``.`` of the patterns that it matches.
        ``None`` when some character has no such stand-in (``K``, the Kelvin sign, matches ``k``
        case-insensitively). What a batch scan reads for a non-ASCII text.

        Example:
            >>> Prefilter([r"\\w+@\\w+", r"(?i)k"], "re").shadow("josé@exámple")
            'jos_@ex_mple'
        """
        if self._atoms is None:
            kept = [p for i, p in enumerate(self.patterns) if i not in self.ascii_only]
            self._atoms = _atoms([w for src, f in kept if (w := _widen(src, f))])
            if self._atoms is None:  # a construct _atoms does not know: no stand-ins
                self._atoms = [re.compile(r"[^\x00-\x7f]")]  # matched by every non-ASCII character, no stand-in
        table: dict[int, str] = {}
        for ch in set(text):
            if ch <= "\x7f":
                continue
            if ch not in self._shadows:
                word = bool(_WORD.fullmatch(ch))
                matched = [a for a in self._atoms if a.fullmatch(ch)]
                self._shadows[ch] = next(
                    (s for s in _SHADOWS if bool(_WORD.fullmatch(s)) == word and all(a.fullmatch(s) for a in matched)),
                    None,
                )
            stand_in = self._shadows[ch]
            if stand_in is None:
                return None
            table[ord(ch)] = stand_in
        return text.translate(table)

    @property
    def active(self) -> bool:
        """Whether a multi-pattern engine is in use (``False``: ``candidates`` is always ``None``)."""
        return self.engine != "re" and bool(self.patterns)

    @functools.cached_property
    def joinable(self) -> bool:
        """Whether :meth:`candidates_of_all` may scan texts joined by line breaks: no pattern
        anchors at the start or end of the whole string (``\\A``, ``\\Z``, or ``^`` / ``$``
        without ``re.MULTILINE``), so a match in one text is still a match in the joined string."""
        ends = {sre_constants.AT_BEGINNING_STRING, sre_constants.AT_END_STRING}
        line = {sre_constants.AT_BEGINNING, sre_constants.AT_END}

        def walk(node: object, multiline: bool) -> bool:
            if isinstance(node, tuple) and len(node) == 2 and node[0] is sre_constants.AT:
                return not (node[1] in ends or (node[1] in line and not multiline))
            if isinstance(node, (list, tuple)) or type(node).__name__ == "SubPattern":
                return all(walk(child, multiline) for child in node)  # type: ignore[attr-defined]
            return True

        try:
            return all(walk(list(sre_parse.parse(src, flags)), bool(flags & re.MULTILINE)) for src, flags in self.patterns)  # noqa: E501
        except re.error:
            return False

    def candidates_of_all(self, texts: Sequence[str]) -> set[int] | None:
        """Patterns that could match at least one of ``texts``, in one scan when :attr:`joinable`;
        ``None`` when it cannot tell (then ask :meth:`candidates` text by text)."""
        if not self.active or not self.joinable:
            return None
        return self.candidates("\n".join(texts))

    def segment_hits(
        self, texts: Sequence[str], transforms: Sequence[Callable[[str], str]] = ()
    ) -> dict[int, set[int] | None] | None:
        """Per text, the patterns that could match it (a superset, as :meth:`candidates`), for a
        whole batch: ``{index: pattern ids, or None when the prefilter cannot tell}``; a text not
        listed matches no pattern. ``None`` overall without an engine.

        With ``transforms`` (length-preserving, ASCII to ASCII, line breaks and NULs kept, such as
        ``str.lower`` or a ``str.translate`` table) each text is scanned once per transform and
        the ids are merged. Hyperscan scans the batch once per transform, joined by :data:`_SEP`
        (patterns widened by :func:`_widen`, every match reported); other engines ask text by
        text (:meth:`candidates`). Without transforms a non-ASCII text is read as its
        :meth:`shadow`; a text with no shadow, or holding a NUL, is not scanned and answers ``None``.
        """
        if not self.active:
            return None
        steps = list(transforms) or [str]
        out: dict[int, set[int] | None] = {}
        joined = _SEP.join(texts)
        if not joined.isascii() or joined.count("\x00") != max(0, len(texts) - 1):
            texts = list(texts)
            for k, text in enumerate(texts):
                if text.isascii() and "\x00" not in text:
                    continue
                shadow = self.shadow(text) if not transforms and not text.isascii() else None
                if shadow is None or "\x00" in shadow:  # cannot tell: not scanned
                    out[k], texts[k] = None, ""
                else:  # the ASCII-only patterns are possible, the others as the shadow says
                    out[k], texts[k] = set(self.ascii_only), shadow
            joined = _SEP.join(texts)
        if self.engine != "hyperscan":
            for k, text in enumerate(texts):
                for step in steps if out.get(k, ()) is not None else ():
                    cand = self.candidates(step(text))
                    if cand is None:
                        out[k] = None
                        break
                    if cand:
                        out.setdefault(k, set()).update(cand)  # type: ignore[union-attr]
            return {k: ids for k, ids in out.items() if ids is None or ids}
        if self._batch_db is None:
            self._batch_db = _compiled(self.engine, self.patterns, True)
        starts = list(itertools.accumulate((len(t) + len(_SEP) for t in texts[:-1]), initial=0))
        unsafe = self._batch_db.unsafe
        for step in steps:
            for k, ids in self._batch_db.match_segments(step(joined).encode("ascii"), starts).items():
                if k in out and out[k] is None:
                    continue
                if unsafe in ids:
                    out[k] = None
                else:
                    out.setdefault(k, set()).update(ids)  # type: ignore[union-attr]
        return {k: ids for k, ids in out.items() if ids is None or ids}

    def candidates(self, text: str) -> set[int] | None:
        """Indices of the patterns that could match ``text``; ``None`` when the prefilter cannot
        tell (no engine, or a text outside the ASCII subset both engines read alike): run all."""
        if not self.active or not text.isascii():
            return None
        if self._db is None:  # compiled on first use, once per process and pattern list
            self._db = _compiled(self.engine, self.patterns)
        hits = self._db.match(text.encode("ascii"))
        if self._db.unsafe in hits:
            return None
        return hits
