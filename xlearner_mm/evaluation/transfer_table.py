"""The results table of the transfer suite (paper Sec. 4.2 and Table 2):
each pre-trained backbone's downstream results, their gains over a baseline
row and their multi-task relative gain Delta_m, as Markdown, CSV and JSON.

``configs/transfer/paper_table2.csv`` holds the paper's Table 2 as reference
rows (read with :func:`read_reference_rows`); the paper's ``*`` marks (model
not pre-trained with semantic segmentation) are dropped.

Example:
    >>> results = {
    ...     'imagenet_supervised': {'AVG Cls': 74.4, 'PASCAL Det': 81.5},
    ...     'xlearner': {'AVG Cls': 77.1, 'PASCAL Det': 84.4},
    ... }
    >>> table = build_transfer_table(results, 'imagenet_supervised')
    >>> table['rows'][1]['gains']['AVG Cls']
    2.7
    >>> round(table['rows'][1]['Delta_m'], 2)  # (3.63% + 3.56%) / 2
    3.59
"""
import csv
import io
import os.path as osp
from typing import Dict, Optional, Tuple

from xlearner_mm.utils import (atomic_json_dump, atomic_write_text,
                               markdown_table)

# The linear probe's average top-1 and the paper's three downstream
# columns, the ones Delta_m averages over.
AVG_CLS = 'AVG Cls'
MAIN_COLUMNS = (AVG_CLS, 'PASCAL Det', 'PASCAL Seg')
# The key of a result that holds the per-dataset linear-probe accuracies.
PROBE_KEY = 'probe'
DELTA_M = 'Delta_m'
REFERENCE_HEADER = ('method', ) + MAIN_COLUMNS + ('baseline', )

# {method: {'AVG Cls': 74.4, 'probe': {'cifar10': 90.1}, ...}}
Results = Dict[str, dict]


def _as_number(method: str, column: str, value) -> Optional[float]:
    """``value`` as a float, None kept; anything else is a caller's bug."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f'{method!r}: {column!r} must be a number or None, '
                        f'got {value!r}')
    return float(value)


def _flat_values(method: str,
                 result: Optional[dict]) -> Dict[str, Optional[float]]:
    """One row of results as ``{column: value}``, probe datasets included;
    a None result (no job has run) has no values.

    Unknown keys are refused: a misspelt column would otherwise show up as
    a missing value."""
    result = result or {}
    known = MAIN_COLUMNS + (PROBE_KEY, )
    unknown = [key for key in result if key not in known]
    if unknown:
        raise ValueError(f'{method!r}: unknown result keys {unknown}; the '
                         f'keys are {list(MAIN_COLUMNS)} and {PROBE_KEY!r}')
    values = {column: result.get(column) for column in MAIN_COLUMNS}
    values.update(result.get(PROBE_KEY) or {})
    return {
        column: _as_number(method, column, value)
        for column, value in values.items()
    }


def _gain(value: Optional[float], base: Optional[float]) -> Optional[float]:
    """``value - base`` in points, None if either is missing. Rounded to 10
    decimals to drop float noise (77.1 - 74.4 = 2.6999999999999886) from
    the CSV and JSON; metrics have a few decimals at most."""
    if value is None or base is None:
        return None
    return round(value - base, 10)


def _delta_m(values: Dict[str, Optional[float]],
             base: Dict[str, Optional[float]]) -> Optional[float]:
    """Delta_m of Vandenhende et al. (Multi-Task Learning for Dense
    Prediction Tasks: A Survey, TPAMI 2021) with all metrics higher-is-better:
    ``mean over c of 100 * (values[c] - base[c]) / base[c]`` in percent, c
    over the :data:`MAIN_COLUMNS` both rows have (a zero base is skipped:
    its relative gain is undefined); None if there is none."""
    relative_gains = [
        100 * (values[column] - base[column]) / base[column]
        for column in MAIN_COLUMNS
        if values.get(column) is not None and base.get(column)
    ]
    if not relative_gains:
        return None
    return sum(relative_gains) / len(relative_gains)


def build_transfer_table(
        results: Results,
        baseline: str,
        reference: Optional[Tuple[Results, str]] = None) -> dict:
    """The transfer results as a table of values, gains and Delta_m.

    Args:
        results (dict): ``{method: result}`` in row order; a result (None
            if no job has run) has the keys ``'AVG Cls'``, ``'PASCAL Det'``,
            ``'PASCAL Seg'`` (numbers) and ``'probe'`` (``{dataset:
            top-1}``), each optional or None.
        baseline (str): The row of ``results`` the gains are over.
        reference (tuple, optional): ``(rows, baseline)`` as
            :func:`read_reference_rows` returns them: rows appended after
            the measured ones with ``kind='paper'``, their gains over their
            own baseline row. Defaults to None.

    Returns:
        dict: ``columns``: 'AVG Cls', the probe datasets (first seen
        first), 'PASCAL Det', 'PASCAL Seg'; ``rows``: one dict per row with
        ``method``, ``kind`` ('measured' or 'paper'), ``baseline`` (the
        row its gains are over), ``values`` and ``gains`` (``{column:
        float or None}``, gain = value - baseline value, in points) and
        ``Delta_m`` (mean over the main columns both rows have of
        ``100 * (value - baseline value) / baseline value``, see
        :func:`_delta_m`).

    Example:
        >>> table = build_transfer_table(
        ...     {'sup': {'AVG Cls': 74.4}, 'ours': {'AVG Cls': 77.1}}, 'sup',
        ...     reference=read_reference_rows(
        ...         'configs/transfer/paper_table2.csv'))
        >>> [row['kind'] for row in table['rows']][:3]
        ['measured', 'measured', 'paper']
    """
    groups = [('measured', results, baseline)]
    if reference is not None:
        reference_rows, reference_baseline = reference
        groups.append(('paper', reference_rows, reference_baseline))
    flat_groups = []
    for kind, rows, base_name in groups:
        if base_name not in rows:
            raise ValueError(
                f'baseline {base_name!r} is not a row of the {kind} '
                f'results; the rows are {list(rows)}')
        flat_groups.append((kind, base_name, {
            method: _flat_values(method, result)
            for method, result in rows.items()
        }))

    probe_columns = []
    for _, _, rows in flat_groups:
        for values in rows.values():
            probe_columns += [
                column for column in values
                if column not in MAIN_COLUMNS and column not in probe_columns
            ]
    columns = [MAIN_COLUMNS[0], *probe_columns, *MAIN_COLUMNS[1:]]

    table_rows = []
    for kind, base_name, rows in flat_groups:
        base = rows[base_name]
        for method, values in rows.items():
            table_rows.append({
                'method': method,
                'kind': kind,
                'baseline': base_name,
                'values': {column: values.get(column) for column in columns},
                'gains': {
                    column: _gain(values.get(column), base.get(column))
                    for column in columns
                },
                DELTA_M: _delta_m(values, base),
            })
    return {'columns': columns, 'rows': table_rows}


def read_reference_rows(path: str) -> Tuple[Results, str]:
    """Reference rows from a CSV file with the header
    ``method,AVG Cls,PASCAL Det,PASCAL Seg,baseline``: values may be empty
    (missing); ``baseline`` is ``yes`` on exactly one row, empty elsewhere.

    Returns:
        tuple: ``({method: {column: float or None}}, baseline method)``, the
        ``reference`` argument of :func:`build_transfer_table`.

    Example:
        >>> rows, baseline = read_reference_rows(
        ...     'configs/transfer/paper_table2.csv')
        >>> baseline, rows['X-Learner']['PASCAL Det']
        ('ImageNet Supervised', 84.4)
    """
    # utf-8-sig: spreadsheet programs start their CSV files with a BOM.
    with open(path, newline='', encoding='utf-8-sig') as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(cell.strip() for cell in header) \
                != REFERENCE_HEADER:
            raise ValueError(f'{path}, line 1: the header must be '
                             f'{",".join(REFERENCE_HEADER)}, got {header}')
        rows = {}
        baselines = []
        for cells in reader:
            if not cells:  # a blank line
                continue
            where = f'{path}, line {reader.line_num}'
            if len(cells) != len(REFERENCE_HEADER):
                raise ValueError(f'{where}: {len(cells)} fields, expected '
                                 f'{len(REFERENCE_HEADER)}')
            method, *numbers, is_baseline = (cell.strip() for cell in cells)
            if not method or method in rows:
                raise ValueError(
                    f'{where}: the method {method!r} is empty or repeated')
            if is_baseline not in ('yes', ''):
                raise ValueError(f"{where}: baseline must be 'yes' or empty, "
                                 f'got {is_baseline!r}')
            values = {}
            for column, number in zip(MAIN_COLUMNS, numbers):
                try:
                    values[column] = float(number) if number else None
                except ValueError:
                    raise ValueError(f'{where}: {column} {number!r} is not '
                                     'a number') from None
            rows[method] = values
            if is_baseline:
                baselines.append(method)
    if len(baselines) != 1:
        raise ValueError(f"{path}: exactly one row must have baseline 'yes', "
                         f'found {baselines}')
    return rows, baselines[0]


def _format_cell(value: Optional[float], gain: Optional[float]) -> str:
    """``77.1 (+2.7)``; ``77.1`` without a gain; ``-`` without a value."""
    if value is None:
        return '-'
    if gain is None:
        return f'{value:.1f}'
    return f'{value:.1f} ({gain:+.1f})'


def format_transfer_markdown(table: dict) -> str:
    """A table of :func:`build_transfer_table` as a GitHub Markdown table:
    cells ``value (gain)``, the baseline rows' cells without gains, and a
    Delta_m column like ``+3.21%``; reference rows labelled ``paper: X``.

    Example:
        >>> print(format_transfer_markdown(build_transfer_table(
        ...     {'sup': {'AVG Cls': 74.4}, 'ours': {'AVG Cls': 77.1}}, 'sup')),
        ...     end='')
        | method | AVG Cls | PASCAL Det | PASCAL Seg | Delta_m |
        | --- | ---: | ---: | ---: | ---: |
        | sup (baseline) | 74.4 | - | - | +0.00% |
        | ours | 77.1 (+2.7) | - | - | +3.63% |
    """
    columns = table['columns']
    rows = []
    for row in table['rows']:
        is_baseline = row['method'] == row['baseline']
        label = row['method'] if row['kind'] == 'measured' \
            else f'{row["kind"]}: {row["method"]}'
        if is_baseline:
            label += ' (baseline)'
        cells = [label.replace('|', '\\|')]  # a '|' would split the cell
        cells += [
            _format_cell(row['values'][column],
                         None if is_baseline else row['gains'][column])
            for column in columns
        ]
        delta_m = row[DELTA_M]
        cells.append('-' if delta_m is None else f'{delta_m:+.2f}%')
        rows.append(cells)
    return markdown_table(['method', *columns, DELTA_M], rows) + '\n'


def _csv_text(table: dict) -> str:
    """The table as CSV: method, kind, the row its gains are over, then a
    value and a gain column per column, then Delta_m; missing is empty."""
    columns = table['columns']
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(['method', 'kind', 'gains over'] +
                    [name for column in columns
                     for name in (column, f'{column} gain')] + [DELTA_M])
    for row in table['rows']:
        # csv writes None as an empty field.
        writer.writerow([row['method'], row['kind'], row['baseline']] + [
            number for column in columns
            for number in (row['values'][column], row['gains'][column])
        ] + [row[DELTA_M]])
    return buffer.getvalue()


def write_transfer_table(table: dict,
                         out_dir: str,
                         name: str = 'transfer_results') -> Dict[str, str]:
    """Write ``<name>.md`` (:func:`format_transfer_markdown`),
    ``<name>.csv`` (a value and a gain column per column) and ``<name>.json``
    (``table`` itself) into ``out_dir`` (created if missing), each
    atomically.

    Returns:
        dict: ``{'md': path, 'csv': path, 'json': path}``.

    Example:
        >>> table = build_transfer_table({'sup': {'AVG Cls': 74.4}}, 'sup')
        >>> paths = write_transfer_table(table, 'work_dirs/transfer')
        >>> paths['md']
        'work_dirs/transfer/transfer_results.md'
    """
    paths = {ext: osp.join(out_dir, f'{name}.{ext}')
             for ext in ('md', 'csv', 'json')}
    atomic_write_text(format_transfer_markdown(table), paths['md'])
    atomic_write_text(_csv_text(table), paths['csv'])
    atomic_json_dump(table, paths['json'], indent=2)
    return paths
