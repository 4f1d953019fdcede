#!/usr/bin/env python3
"""Per-file mutation scores of several Stryker.NET runs over the same source, combined mutant by mutant.

docs/reliability.md ("Mutation testing") scores a folder with the tests that existed (the before run), then runs only
the new tests (they take seconds, where the old ones read fixtures for every mutant). A mutant counts as detected
after if any run detected it (Killed or Timeout): the old tests are unchanged, so what they killed stays killed.

    stryker_union.py BEFORE.json NEW.json [MORE.json ...] [--only=PREFIX[,PREFIX...]] [--list]

BEFORE.json may be '-' (no before run). The rows and mutants are those of NEW.json (the source the new tests ran
on); each is matched in the other reports by file, the text of its source line, its column, mutator and replacement,
so lines inserted elsewhere in a file (a fix) do not break the match. A mutant with no partner in BEFORE.json (on a
changed line) keeps what the new runs found. A mutant no run detected counts as survived if any run's tests reached
it, else as without coverage. Columns: killed / survived / timeout / no coverage, score
(killed + timeout) / all four.
"""
import collections
import json
import sys

SCORED = ('Killed', 'Survived', 'Timeout', 'NoCoverage')
DETECTED = ('Killed', 'Timeout')


def short(path):
    return path.split('src/MobileOne/')[-1]


def key(path, source_lines, mutant):
    start = mutant['location']['start']
    return (short(path), source_lines[start['line'] - 1].strip(), start['column'], mutant['mutatorName'], mutant.get('replacement', ''))


def index(report):
    found = collections.defaultdict(list)
    for path, f in report['files'].items():
        lines = f['source'].splitlines()
        for m in f['mutants']:
            found[key(path, lines, m)].append(m['status'])
    return found


def main():
    args = [a for a in sys.argv[1:] if not a.startswith('--')]
    only = next((a.split('=', 1)[1].split(',') for a in sys.argv[1:] if a.startswith('--only=')), None)
    listing = '--list' in sys.argv
    if len(args) < 2:
        sys.exit(__doc__)
    before = index(json.load(open(args[0]))) if args[0] != '-' else collections.defaultdict(list)
    new = json.load(open(args[1]))
    extras = [index(json.load(open(p))) for p in args[2:]]
    total = collections.Counter()
    unmatched = 0
    for path, f in sorted(new['files'].items()):
        if only and not any(short(path).startswith(o) for o in only):
            continue
        lines = f['source'].splitlines()
        counts = collections.Counter()
        left = []
        for m in f['mutants']:
            status = m['status']
            # Partners are taken in file order, for every mutant (also those not scored), so that mutants with the same
            # key (a block's '{' at the same column) stay aligned across the runs.
            k = key(path, lines, m)
            old = before[k].pop(0) if before.get(k) else None
            others = [other[k].pop(0) if other.get(k) else None for other in extras]
            if status not in SCORED:
                continue
            unmatched += old is None
            seen = [status, old] + others
            # Detected by any run; else survived if any run's tests reached it; else without coverage.
            status = next((s for s in seen if s in DETECTED), 'Survived' if 'Survived' in seen else status)
            counts[status] += 1
            if status not in DETECTED:
                start = m['location']['start']
                left.append(f"    {status} {start['line']}:{start['column']} {m['mutatorName']}: "
                            f"{m.get('replacement', '')[:60]!r} | {lines[start['line'] - 1].strip()[:100]}")
        n = sum(counts[s] for s in SCORED)
        if n == 0:
            continue
        total.update(counts)
        k_, s_, t_, nc = (counts[s] for s in SCORED)
        print(f"{short(path):45} {k_} / {s_} / {t_} / {nc}   {100 * (k_ + t_) / n:.1f}%")
        if listing:
            print('\n'.join(left))
    n = sum(total[s] for s in SCORED)
    k_, s_, t_, nc = (total[s] for s in SCORED)
    print(f"{'total':45} {k_} / {s_} / {t_} / {nc}   {100 * (k_ + t_) / n:.1f}%   ({unmatched} without a before partner)")


if __name__ == '__main__':
    main()
