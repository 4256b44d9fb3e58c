"""Replaces a generated block of README.md: the lines between `<!-- NAME:begin -->` and
`<!-- NAME:end -->` (other blocks and hand-written text stay as they are).

    python3 bench/readme_block.py README.md NAME BLOCK_FILE
"""

import sys


def main():
    path, name, block_file = sys.argv[1:4]
    block = open(block_file).read()
    text = open(path).read()
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in text or end not in text:
        sys.exit(f"{path} has no {name} markers")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    open(path, "w").write(head + begin + "\n" + block + end + tail)


if __name__ == "__main__":
    main()
