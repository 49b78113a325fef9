"""Plain-text tables for the reports the tools print."""
from typing import Sequence


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]],
                 right: Sequence[bool]) -> str:
    """``header`` and ``rows`` as lines of columns two spaces apart, each
    column as wide as its widest cell; ``right[i]`` aligns column i to the
    right (numbers) instead of the left. The last column is not padded."""
    widths = [max(len(cell) for cell in column)
              for column in zip(header, *rows)]

    def line(cells):
        return '  '.join(
            cell.rjust(width) if align else cell.ljust(width)
            for cell, width, align in zip(cells, widths, right)).rstrip()

    return '\n'.join(line(cells) for cells in (header, *rows))


def markdown_table(header: Sequence[str],
                   rows: Sequence[Sequence[str]]) -> str:
    """``header`` and ``rows`` as a Markdown (GitHub) table; every column but
    the first is aligned right."""

    def line(cells):
        return '| ' + ' | '.join(str(c) for c in cells) + ' |'

    rule = ['---'] + ['---:'] * (len(header) - 1)
    return '\n'.join([line(header), line(rule)] + [line(r) for r in rows])
