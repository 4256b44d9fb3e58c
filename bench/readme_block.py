"""Generated blocks of README.md's Performance section.

As a command, replaces one block: the lines between `<!-- NAME:begin -->` and
`<!-- NAME:end -->` (other blocks and hand-written text stay as they are).

    python3 bench/readme_block.py README.md NAME BLOCK_FILE

As a module (bench/chat_table.py, bench/tables.py), what every block shares: the header
line (date, load average at the start, exact command and parameters), the targets' verdicts
("met" / "**not met**"), number formats and report loading. Standard library only.
"""

import datetime
import json
import sys


def replace_block(path, name, block):
    """Writes `block` between NAME's markers in the file at `path`."""
    with open(path) as f:
        text = f.read()
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in text or end not in text:
        sys.exit(f"{path} has no {name} markers")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    if not block.endswith("\n"):
        block += "\n"
    with open(path, "w") as f:
        f.write(head + begin + "\n" + block + end + tail)


def header(script, title, load, params, what):
    """The first lines of a block: never edited by hand; date, load, command, parameters."""
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    return (
        f"<!-- {script} --readme: generated block, do not edit by hand -->\n"
        f"**{title}** ({date}, load average {load} at the start; `bash {script} --readme`, "
        f"{params}: {what}):\n"
    )


def verdict(ok):
    """A target's verdict; None when the figure was not measured."""
    if ok is None:
        return "not measured"
    return "met" if ok else "**not met**"


def target(text, ok, measured=None):
    """`text — met (measured)`: one target with its computed verdict."""
    return f"{text} — {verdict(ok)}" + (f" ({measured})" if measured and ok is not None else "")


def load_report(path):
    """A loadtest JSON report, or None when the run left none (or an unreadable one)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fmt_ns(ns):
    """A duration in ns with a unit that keeps 3 significant digits."""
    if ns is None:
        return "–"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_us(us, digits=1):
    return "–" if us is None else f"{us:,.{digits}f} µs"


def fmt_ms(us):
    """µs shown in ms."""
    return "–" if us is None else f"{us / 1e3:,.1f}"


def fmt_mib(b):
    return "–" if not b else f"{b / 2**20:,.0f} MiB"


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    path, name, block_file = sys.argv[1:4]
    with open(block_file) as f:
        replace_block(path, name, f.read())


if __name__ == "__main__":
    main()
