"""Every health counter goes through the registry, proto/include/ptypilot/wire/counters.hpp.

The C++ sources (daemon/, proto/, sim_detector/, scan_driver/) are read as text, comments left
out, and this fails

* on a string literal as the name a counter is counted under: the first argument of
  `increment(` or `reject(`, or the name the DECTRIS parser hands back (`fail(counter, "...")`,
  `*counter = "..."`), however it is wrapped;
* on a string literal anywhere that spells a registered name, other than a log event's own name
  (`log::info("dectris_series_started", ...)`): a name in a table of pairs is counted too;
* on a registered counter whose constant no source uses (a dead row);
* when a constant is not named after its counter (frames_foo_bar: kFramesFooBar), or is not in
  kCounters exactly once, so that the header cannot say one name and the table another.

With PTYPILOT_BIN set it also checks that `ptypilot counters` lists exactly these names.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = ROOT / "proto/include/ptypilot/wire/counters.hpp"
REGISTRY_FILES = {REGISTRY, ROOT / "proto/src/counters.cpp"}
SOURCE_DIRS = ["daemon", "proto", "sim_detector", "scan_driver"]
SUFFIXES = {".cpp", ".hpp", ".h", ".cc", ".cu", ".cuh"}
BIN = os.environ.get("PTYPILOT_BIN")

CONSTANT = re.compile(r'inline\s+constexpr\s+std::string_view\s+(k\w+)\s*=\s*"([^"]*)"\s*;')
ROW = re.compile(r"CounterInfo\s*\{\s*(k\w+)\s*,")
# Where a counter's name is given: the call's first argument is checked for a literal.
COUNTING_CALL = re.compile(r"\b(?:increment|reject)\s*\(")
PARSER_NAMING = re.compile(r"\bfail\s*\(\s*counter\s*,|\*\s*counter\s*=")
LOG_EVENT = re.compile(r"\blog::\w+\s*\(\s*$")


class Source:
    """C++ text without its comments (blanked, so that line numbers hold), and where its string
    literals are. Character literals are skipped whole, so '"' starts no string."""

    def __init__(self, text: str):
        out, literals, i, n = [], [], 0, len(text)
        while i < n:
            if text.startswith("//", i):
                j = text.find("\n", i)
                j = n if j < 0 else j
            elif text.startswith("/*", i):
                j = text.find("*/", i + 2)
                j = n if j < 0 else j + 2
            elif text[i] in "\"'":
                j = i + 1
                while j < n and text[j] not in (text[i], "\n"):
                    j += 2 if text[j] == "\\" else 1
                j = min(j + 1, n)
                if text[i] == '"':
                    literals.append((i, j))
                out.append(text[i:j])
                i = j
                continue
            else:
                out.append(text[i])
                i += 1
                continue
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        self.text = "".join(out)
        self.literals = literals

    def line(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    def in_literal(self, pos: int) -> bool:
        return any(a <= pos < b for a, b in self.literals)

    def literal_at(self, pos: int) -> tuple[int, int] | None:
        return next(((a, b) for a, b in self.literals if a == pos), None)

    def argument_end(self, start: int) -> int:
        """Where the call argument that starts at `start` ends: the first `,` or `)` outside
        brackets and literals."""
        depth, i = 0, start
        while i < len(self.text):
            span = self.literal_at(i)
            if span:
                i = span[1]
                continue
            c = self.text[i]
            if c in "([{":
                depth += 1
            elif c in ")]}":
                if depth == 0:
                    break
                depth -= 1
            elif c == "," and depth == 0:
                break
            i += 1
        return i

    def has_literal(self, start: int, end: int) -> bool:
        return any(start <= a < end for a, _ in self.literals)


def literal_counter_names(src: Source) -> list[tuple[int, str]]:
    """(line, excerpt) of every place that gives the name a counter is counted under as a string
    literal: the first argument of increment( or reject(, or the parser's name (the second
    argument of fail(counter, ...), or what *counter is set to)."""
    found = []
    for m in [*COUNTING_CALL.finditer(src.text), *PARSER_NAMING.finditer(src.text)]:
        if src.in_literal(m.start()):
            continue
        assigned = m.group(0).endswith("=")
        end = src.text.find(";", m.end()) if assigned else src.argument_end(m.end())
        if src.has_literal(m.end(), end):
            found.append((src.line(m.start()), " ".join(src.text[m.start():end + 1].split())))
    return found


def literals_spelling(src: Source, names: set[str]) -> list[tuple[int, str]]:
    """(line, literal) of the string literals that spell a registered name and are not a log
    event's name."""
    found = []
    for a, b in src.literals:
        if src.text[a + 1:b - 1] in names and not LOG_EVENT.search(src.text[max(0, a - 40):a]):
            found.append((src.line(a), src.text[a:b]))
    return found


def camel(name: str) -> str:
    return "k" + "".join(word.capitalize() for word in name.split("_"))


def registry() -> tuple[dict[str, str], list[str]]:
    """The counter constants (identifier: name) and the identifiers of kCounters' rows, in
    order. The part names (namespace part) are not counters."""
    text = Source(REGISTRY.read_text()).text
    text = re.sub(r"namespace\s+part\s*\{.*?\}", "", text, flags=re.DOTALL)
    table_at = text.index("kCounters")
    constants = dict(CONSTANT.findall(text[:table_at]))
    rows = ROW.findall(text[table_at:])
    return constants, rows


def sources() -> list[Path]:
    files = []
    for d in SOURCE_DIRS:
        files += [p for p in sorted((ROOT / d).rglob("*")) if p.suffix in SUFFIXES and p.is_file()]
    return files


CONSTANTS, ROWS = registry()
NAMES = set(CONSTANTS.values())


def test_the_registry_is_read():
    assert len(CONSTANTS) >= 50, CONSTANTS
    assert sources(), "no C++ sources found"


def test_each_constant_is_named_after_its_counter():
    wrong = {k: v for k, v in CONSTANTS.items() if camel(v) != k}
    assert not wrong, f"constants not named after their counter (frames_foo: kFramesFoo): {wrong}"
    assert len(NAMES) == len(CONSTANTS), "two constants spell the same counter"


def test_each_constant_has_exactly_one_row():
    missing = sorted(set(CONSTANTS) - set(ROWS))
    unknown = sorted(set(ROWS) - set(CONSTANTS))
    repeated = sorted({r for r in ROWS if ROWS.count(r) > 1})
    assert not missing, f"constants without a row in kCounters: {missing}"
    assert not unknown, f"rows of kCounters that are no constant of counters.hpp: {unknown}"
    assert not repeated, f"constants with more than one row in kCounters: {repeated}"


def test_no_counter_is_counted_under_a_literal():
    found = []
    for path in sources():
        if path in REGISTRY_FILES:
            continue
        src = Source(path.read_text(errors="replace"))
        rel = path.relative_to(ROOT)
        found += [f"{rel}:{line}: {what}" for line, what in literal_counter_names(src)]
        found += [f"{rel}:{line}: {what}" for line, what in literals_spelling(src, NAMES)]
    assert not found, (
        "counter names given as string literals; declare the counter in "
        "proto/include/ptypilot/wire/counters.hpp and use its constant:\n  " + "\n  ".join(found))


def test_every_registered_counter_is_counted_somewhere():
    used = set()
    for path in sources():
        if path in REGISTRY_FILES:
            continue
        used |= set(re.findall(r"\bk[A-Z]\w*", Source(path.read_text(errors="replace")).text))
    dead = sorted(CONSTANTS[k] for k in CONSTANTS if k not in used)
    assert not dead, f"registered counters that no source counts (remove their rows): {dead}"


@pytest.mark.parametrize("snippet", [
    'health_.increment("frames_foo");',
    'health.increment( "frames_foo", n);',
    'health_.reject(\n    "frames_foo", "why");',
    'health_.increment(std::string("frames_foo"));',
    'health_.increment(std::string_view{"frames_foo"}, 2);',
    'return fail(counter, "dectris_foo", "why");',
    '*counter = "dectris_foo";',
])
def test_the_scan_finds_a_literal_name(snippet):
    assert literal_counter_names(Source(snippet)), snippet


@pytest.mark.parametrize("snippet", [
    "health_.increment(counters::kFramesAccepted);",
    'health_.reject(counters::kFramesDuplicate, describe(frame) + " arrived twice");',
    'return reject(counter, "rejected " + s.message());',
    'return fail(counter, counters::kDectrisCorruptData, which + "x");',
    '// health_.increment("frames_foo") in a comment',
    '/* reject("frames_foo", "") */ int x = 0;',
    'const char* s = "// increment(\\"frames_foo\\")";',
])
def test_the_scan_passes_a_constant(snippet):
    assert not literal_counter_names(Source(snippet)), snippet


def test_the_scan_finds_a_registered_name_outside_a_call():
    text = 'for (auto [name, n] : {std::pair{"positions_clamped", s.clamped}}) h.increment(name, n);'
    assert literals_spelling(Source(text), NAMES)
    assert not literals_spelling(Source('log::info("positions_clamped", {{"n", 1}});'), NAMES)


@pytest.mark.skipif(not BIN, reason="PTYPILOT_BIN (build/bin) is not set; run via ctest")
def test_the_command_lists_every_registered_counter():
    result = subprocess.run([str(Path(BIN) / "ptypilot"), "counters"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    listed = re.findall(r"^\| `([a-z0-9_]+)` \|", result.stdout, flags=re.MULTILINE)
    assert listed == [CONSTANTS[k] for k in ROWS]
