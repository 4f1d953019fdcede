#!/usr/bin/env python3
"""Stryker.NET `-m` patterns for the mutants a report left undetected (Survived or NoCoverage), as character spans.

docs/reliability.md scores a folder with new tests first (fast), then runs the older, slower tests only on what the new
ones left: Stryker.NET accepts `-m "**/File.cs{start..end}{...}"`, character offsets into the file. Each undetected
mutant's span is widened by one character on either side and overlapping spans are merged.

    stryker_spans.py REPORT.json [--only=PREFIX]    (prints one -m "..." argument per file)
"""
import json
import sys


def main():
    args = [a for a in sys.argv[1:] if not a.startswith('--')]
    only = next((a.split('=', 1)[1] for a in sys.argv[1:] if a.startswith('--only=')), None)
    if len(args) != 1:
        sys.exit(__doc__)
    report = json.load(open(args[0]))
    parts = []
    for path, f in sorted(report['files'].items()):
        short = path.split('src/MobileOne/')[-1]
        if only and not short.startswith(only):
            continue
        starts = [0]
        for line in f['source'].split('\n'):
            starts.append(starts[-1] + len(line) + 1)
        spans = []
        for m in f['mutants']:
            if m['status'] in ('Survived', 'NoCoverage'):
                s, e = m['location']['start'], m['location']['end']
                spans.append((max(0, starts[s['line'] - 1] + s['column'] - 2), starts[e['line'] - 1] + e['column']))
        merged = []
        for a, b in sorted(spans):
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
            else:
                merged.append((a, b))
        if merged:
            parts.append('-m "**/%s%s"' % (short, ''.join('{%d..%d}' % span for span in merged)))
    print(' '.join(parts))


if __name__ == '__main__':
    main()
