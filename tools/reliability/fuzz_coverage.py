#!/usr/bin/env python3
"""Line and branch coverage that a fuzz campaign reached, per group of source files.

Reads the cobertura XML that coverlet writes under `dotnet test --collect "XPlat Code Coverage"` (see
docs/reliability.md, "Fuzzing") and prints, for each path prefix given, the lines and branches of those files that
the run executed. Usage: fuzz_coverage.py coverage.cobertura.xml src/MobileOne/IO/Safetensors/ [more prefixes...]
"""
import re
import sys
import xml.etree.ElementTree as ET


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: fuzz_coverage.py COBERTURA.xml PATH_PREFIX [PATH_PREFIX...]")
    root = ET.parse(sys.argv[1]).getroot()
    sources = [s.text.rstrip('/') + '/' for s in root.iter('source') if s.text]
    # A class may appear several times (partial classes, nested types, compiler-generated state machines);
    # count each (file, line) once, covered if any entry covered it.
    lines = {}
    branches = {}
    for cls in root.iter('class'):
        name = cls.get('filename')
        path = next((src + name for src in sources if not name.startswith('/')), name)
        for line in cls.iter('line'):
            key = (path, int(line.get('number')))
            lines[key] = lines.get(key, False) or int(line.get('hits')) > 0
            match = re.search(r'\((\d+)/(\d+)\)', line.get('condition-coverage', ''))
            if line.get('branch') == 'True' and match:
                covered, total = int(match.group(1)), int(match.group(2))
                old = branches.get(key, (0, total))
                branches[key] = (max(old[0], covered), total)
    for prefix in sys.argv[2:]:
        sel = [k for k in lines if prefix in k[0]]
        hit = sum(lines[k] for k in sel)
        bsel = [branches[k] for k in branches if prefix in k[0]]
        bhit, btotal = sum(b[0] for b in bsel), sum(b[1] for b in bsel)
        files = len({k[0] for k in sel})
        if not sel:
            print(f"{prefix}: no instrumented lines")
            continue
        print(f"{prefix}: {files} files, lines {hit}/{len(sel)} ({100 * hit / len(sel):.1f}%), "
              f"branches {bhit}/{btotal} ({100 * bhit / max(btotal, 1):.1f}%)")


if __name__ == '__main__':
    main()
