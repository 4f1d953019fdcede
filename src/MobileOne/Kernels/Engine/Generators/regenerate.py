#!/usr/bin/env python3
"""Rewrites the generated regions of the engine's C# kernels from the generators in this folder.

A region is the text between a begin marker naming a generator and its arguments and an end marker, each on
a line of its own:

    // <generated: depthwise_rows.py 512>
    ...
    // </generated>

Its content is exactly generate(["512"]) of depthwise_rows.py, every non-empty line indented to the column
of the begin marker. Every *.cs file under the Engine folder is scanned.

    python3 regenerate.py           rewrite every region that differs (and say which)
    python3 regenerate.py --check   change nothing; exit 1 naming each region that differs, with a diff

Both exit 1 on malformed markers (unclosed, nested, unknown generator) or when a generator in this folder
owns no region. Standard library only.
"""
import argparse
import difflib
import importlib
import re
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # keep __pycache__ out of the source tree

HERE = Path(__file__).resolve().parent
ENGINE = HERE.parent
BEGIN = re.compile(r"^(?P<indent> *)// <generated: (?P<script>[A-Za-z0-9_]+\.py)(?P<args>(?: [^ <>]+)*)>$")
END = re.compile(r"^ *// </generated>$")
MAX_DIFF_LINES = 60


class MarkerError(Exception):
    pass


def repo_root():
    for d in [HERE, *HERE.parents]:
        if (d / "MobileOne.slnx").exists():
            return d
    return None


def show(path):
    root = repo_root()
    return str(path.relative_to(root)) if root else str(path)


def generators():
    """Generator scripts of this folder, by file name."""
    return sorted(p.name for p in HERE.glob("*.py") if not p.name.startswith("_") and p.name != Path(__file__).name)


_modules = {}


def generate(script, args):
    if script not in _modules:
        if script not in generators():
            raise MarkerError(f"no generator {script} in {show(HERE)}")
        if str(HERE) not in sys.path:
            sys.path.insert(0, str(HERE))
        _modules[script] = importlib.import_module(script[:-3])
    return _modules[script].generate(list(args))


def regions(path, lines):
    """(begin index, end index, indent, script, args) of each region; begin/end are the marker lines."""
    found, begin = [], None
    for i, line in enumerate(lines):
        m = BEGIN.match(line)
        if m:
            if begin is not None:
                raise MarkerError(f"{show(path)}:{i + 1}: region begins inside the region begun at line {begin[0] + 1}")
            begin = (i, m["indent"], m["script"], m["args"].split())
        elif END.match(line):
            if begin is None:
                raise MarkerError(f"{show(path)}:{i + 1}: '// </generated>' without a begin marker")
            found.append((begin[0], i, *begin[1:]))
            begin = None
        elif "<generated" in line or "</generated>" in line:
            raise MarkerError(f"{show(path)}:{i + 1}: malformed marker: {line.strip()}")
    if begin is not None:
        raise MarkerError(f"{show(path)}:{begin[0] + 1}: region is not closed by '// </generated>'")
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if any region differs")
    check = parser.parse_args().check

    differing, used, writes = [], set(), []
    try:
        for path in sorted(ENGINE.rglob("*.cs")):
            text = path.read_bytes().decode("utf-8")
            newline = "\r\n" if "\r\n" in text else "\n"
            lines = text.split(newline)
            out, pos = [], 0
            for begin, end, indent, script, args in regions(path, lines):
                used.add(script)
                name = f"<generated: {' '.join([script, *args])}>"
                try:
                    body = generate(script, args)
                except (ValueError, MarkerError) as e:
                    raise MarkerError(f"{show(path)}:{begin + 1}: {name}: {e}")
                want = [indent + line if line else "" for line in body]
                have = lines[begin + 1:end]
                if have != want:
                    differing.append(f"{show(path)}:{begin + 1}: {name}")
                    if check:
                        print(f"{show(path)}:{begin + 1}: region {name} differs from its generator's output:")
                        diff = list(difflib.unified_diff(have, want, "committed", "generated", n=2, lineterm=""))
                        print("\n".join(diff[:MAX_DIFF_LINES]))
                        if len(diff) > MAX_DIFF_LINES:
                            print(f"... ({len(diff) - MAX_DIFF_LINES} more diff lines)")
                out += lines[pos:begin + 1] + want
                pos = end
            out += lines[pos:]
            if out != lines:
                writes.append((path, newline.join(out)))
        unused = sorted(set(generators()) - used)
        if unused:
            raise MarkerError(f"generators that own no region: {', '.join(unused)}")
    except MarkerError as e:
        print(f"regenerate.py: {e}", file=sys.stderr)
        return 1

    if not check:
        for path, text in writes:  # only once every file has been read without a marker error
            path.write_bytes(text.encode("utf-8"))

    if check:
        if differing:
            print(f"regenerate.py --check: {len(differing)} region(s) differ from their generators "
                  f"(run python3 {show(Path(__file__))} to rewrite them):", file=sys.stderr)
            for d in differing:
                print(f"  {d}", file=sys.stderr)
            return 1
        print(f"regenerate.py --check: every generated region matches ({', '.join(sorted(used))})")
    else:
        for d in differing:
            print(f"rewrote {d}")
        print(f"regenerate.py: {len(differing)} region(s) rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
