"""Line writer shared by the kernel generators (standard library only).

A generator returns its method(s) as a list of lines indented from column 0; regenerate.py indents every
non-empty line to the column of the region's begin marker. Blank lines are empty (no trailing whitespace,
as .editorconfig asks).
"""


class Writer:
    def __init__(self):
        self.lines = []

    def __call__(self, text, ind):
        self.lines.append("    " * ind + text if text else "")

    def block(self, cond, ind):
        """Opens a block, guarded by `if (cond)` on its own line when cond is given."""
        if cond:
            self(f"if ({cond})", ind)
        self("{", ind)


def main(generate, usage):
    """Prints generate(sys.argv[1:]); for running a generator on its own."""
    import sys

    try:
        lines = generate(sys.argv[1:])
    except ValueError as e:
        sys.exit(f"{e}\nusage: {usage}")
    print("\n".join(lines))
