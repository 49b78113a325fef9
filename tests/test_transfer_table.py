"""The transfer suite's results table: gains and Delta_m over a baseline row,
the paper's Table 2 as reference rows, and the Markdown, CSV and JSON files
written from it."""
import csv
import json
import os.path as osp
import re

import pytest

from _tools import REPO_ROOT
from xlearner_mm.evaluation import (build_transfer_table,
                                    format_transfer_markdown,
                                    read_reference_rows, write_transfer_table)

PAPER_TABLE2 = osp.join(REPO_ROOT, 'configs/transfer/paper_table2.csv')
HEADER = 'method,AVG Cls,PASCAL Det,PASCAL Seg,baseline\n'


def measured_results():
    """Two backbones with results missing here and there: the baseline has
    no PASCAL Seg, the other no PASCAL Det and one more probe dataset."""
    return {
        'sup': {
            'AVG Cls': 70.0,
            'probe': {'cifar10': 90.0, 'dtd': 60.0},
            'PASCAL Det': 80.0,
            'PASCAL Seg': None,
        },
        'ours': {
            'AVG Cls': 77.0,
            'probe': {'dtd': 63.5, 'pets': 88.0, 'cifar10': None},
            'PASCAL Seg': 75.0,
        },
    }


def rows_by_method(table, kind):
    return {row['method']: row for row in table['rows'] if row['kind'] == kind}


def test_paper_rows_reproduce_the_papers_gains():
    """Table 2 prints gains over ImageNet Supervised in points; the file's
    figures give them back, and Hard-sharing's drop of 1.2 in AVG Cls that
    the text quotes."""
    rows, baseline = read_reference_rows(PAPER_TABLE2)
    assert baseline == 'ImageNet Supervised'
    assert list(rows) == [
        'ImageNet Supervised', 'SimCLR', 'Hard-sharing', 'X-Learner',
        'X-Learner++', 'X-Learner w/ seg'
    ]
    assert rows['X-Learner'] == {
        'AVG Cls': 77.1, 'PASCAL Det': 84.4, 'PASCAL Seg': 77.1}
    table = build_transfer_table(rows, baseline)
    assert table['columns'] == ['AVG Cls', 'PASCAL Det', 'PASCAL Seg']
    gains = {
        row['method']: tuple(row['gains'].values())
        for row in table['rows']
    }
    assert gains == {
        'ImageNet Supervised': (0.0, 0.0, 0.0),
        'SimCLR': (0.2, 1.4, -1.6),
        'Hard-sharing': (-1.2, 2.2, -5.2),
        'X-Learner': (2.7, 2.9, 1.4),
        'X-Learner++': (3.0, 3.3, 1.8),
        'X-Learner w/ seg': (3.3, 2.8, 1.9),
    }
    delta_m = {row['method']: row['Delta_m'] for row in table['rows']}
    assert delta_m['ImageNet Supervised'] == 0.0
    assert delta_m['X-Learner'] == pytest.approx(
        (270 / 74.4 + 290 / 81.5 + 140 / 75.7) / 3)
    assert delta_m['X-Learner'] == pytest.approx(3.01224, abs=1e-5)
    assert delta_m['SimCLR'] == pytest.approx(-0.04233, abs=1e-5)


def test_columns_values_and_gains_with_missing_results():
    table = build_transfer_table(measured_results(), 'sup')
    assert table['columns'] == [
        'AVG Cls', 'cifar10', 'dtd', 'pets', 'PASCAL Det', 'PASCAL Seg'
    ]
    sup, ours = table['rows']
    assert (sup['method'], sup['kind'], sup['baseline']) == \
        ('sup', 'measured', 'sup')
    assert sup['values'] == {
        'AVG Cls': 70.0, 'cifar10': 90.0, 'dtd': 60.0, 'pets': None,
        'PASCAL Det': 80.0, 'PASCAL Seg': None
    }
    assert sup['gains'] == {
        'AVG Cls': 0.0, 'cifar10': 0.0, 'dtd': 0.0, 'pets': None,
        'PASCAL Det': 0.0, 'PASCAL Seg': None
    }
    assert ours['gains'] == {
        'AVG Cls': 7.0, 'cifar10': None, 'dtd': 3.5, 'pets': None,
        'PASCAL Det': None, 'PASCAL Seg': None
    }
    # Only AVG Cls is in both rows: 100 * 7 / 70.
    assert ours['Delta_m'] == pytest.approx(10.0)
    assert sup['Delta_m'] == 0.0


def test_delta_m_averages_the_columns_both_rows_have():
    results = {
        'base': {'AVG Cls': 50.0, 'PASCAL Det': 80.0, 'PASCAL Seg': 0.0},
        'a': {'AVG Cls': 55.0, 'PASCAL Det': 76.0, 'PASCAL Seg': 10.0},
        'no_main_column': {'probe': {'cifar10': 91.0}},
        'not_run': None,
    }
    rows = build_transfer_table(results, 'base')['rows']
    # (+10% - 5%) / 2; the zero base of PASCAL Seg is left out.
    assert rows[1]['Delta_m'] == pytest.approx(2.5)
    assert rows[1]['gains']['PASCAL Seg'] == 10.0
    assert rows[2]['Delta_m'] is None
    assert rows[3]['Delta_m'] is None
    assert set(rows[3]['values'].values()) == {None}


def test_unknown_baseline_names_it_and_the_rows():
    with pytest.raises(ValueError, match=r"'imagenet'.*\['sup', 'ours'\]"):
        build_transfer_table(measured_results(), 'imagenet')


def test_bad_results_are_refused():
    with pytest.raises(ValueError, match=r"'sup'.*\['PASCAL det'\]"):
        build_transfer_table({'sup': {'PASCAL det': 80.0}}, 'sup')
    with pytest.raises(TypeError, match=r"'sup'.*'dtd'.*'60'"):
        build_transfer_table({'sup': {'probe': {'dtd': '60'}}}, 'sup')


def test_reference_rows_keep_their_own_baseline():
    """The paper rows come after the measured ones, their gains over the
    paper's baseline, not over the measured one (70.0 AVG Cls here)."""
    table = build_transfer_table(
        measured_results(), 'sup', reference=read_reference_rows(PAPER_TABLE2))
    assert [row['kind'] for row in table['rows']] == \
        ['measured'] * 2 + ['paper'] * 6
    assert table['columns'] == [
        'AVG Cls', 'cifar10', 'dtd', 'pets', 'PASCAL Det', 'PASCAL Seg'
    ]
    paper = rows_by_method(table, 'paper')
    assert paper['X-Learner']['baseline'] == 'ImageNet Supervised'
    assert paper['X-Learner']['gains']['AVG Cls'] == 2.7
    assert paper['X-Learner']['gains']['dtd'] is None
    assert paper['X-Learner']['values']['dtd'] is None
    assert paper['X-Learner']['Delta_m'] == pytest.approx(3.01224, abs=1e-5)
    assert paper['ImageNet Supervised']['gains']['PASCAL Seg'] == 0.0
    measured = rows_by_method(table, 'measured')
    assert measured['ours']['gains']['AVG Cls'] == 7.0


def test_markdown():
    table = build_transfer_table(
        measured_results(), 'sup', reference=read_reference_rows(PAPER_TABLE2))
    lines = format_transfer_markdown(table).splitlines()
    # Header, separator, 2 measured and 6 paper rows; method, the 6 columns
    # and Delta_m.
    assert len(lines) == 10
    assert all(line.count(' | ') == 7 for line in lines)
    assert lines[0] == ('| method | AVG Cls | cifar10 | dtd | pets | '
                        'PASCAL Det | PASCAL Seg | Delta_m |')
    assert lines[1] == '| --- |' + ' ---: |' * 7
    assert lines[2] == ('| sup (baseline) | 70.0 | 90.0 | 60.0 | - | 80.0 | '
                        '- | +0.00% |')
    assert lines[3] == ('| ours | 77.0 (+7.0) | - | 63.5 (+3.5) | 88.0 | - | '
                        '75.0 | +10.00% |')
    assert lines[4] == ('| paper: ImageNet Supervised (baseline) | 74.4 | - | '
                        '- | - | 81.5 | 75.7 | +0.00% |')
    assert lines[6] == ('| paper: Hard-sharing | 73.2 (-1.2) | - | - | - | '
                        '83.7 (+2.2) | 70.5 (-5.2) | -1.93% |')
    assert lines[7] == ('| paper: X-Learner | 77.1 (+2.7) | - | - | - | '
                        '84.4 (+2.9) | 77.1 (+1.4) | +3.01% |')


def test_written_files_read_back(tmp_path):
    table = build_transfer_table(
        measured_results(), 'sup', reference=read_reference_rows(PAPER_TABLE2))
    out_dir = osp.join(str(tmp_path), 'new_dir')
    paths = write_transfer_table(table, out_dir, name='suite')
    assert paths == {
        ext: osp.join(out_dir, f'suite.{ext}') for ext in ('md', 'csv', 'json')
    }
    with open(paths['md'], encoding='utf-8') as f:
        assert f.read() == format_transfer_markdown(table)
    with open(paths['json'], encoding='utf-8') as f:
        assert json.load(f) == table
    with open(paths['csv'], newline='', encoding='utf-8') as f:
        reader = csv.DictReader(f)
        csv_rows = list(reader)
    assert reader.fieldnames == [
        'method', 'kind', 'gains over', 'AVG Cls', 'AVG Cls gain', 'cifar10',
        'cifar10 gain', 'dtd', 'dtd gain', 'pets', 'pets gain', 'PASCAL Det',
        'PASCAL Det gain', 'PASCAL Seg', 'PASCAL Seg gain', 'Delta_m'
    ]
    assert len(csv_rows) == 8
    ours, x_learner = csv_rows[1], csv_rows[5]
    assert (ours['method'], ours['kind'], ours['gains over']) == \
        ('ours', 'measured', 'sup')
    assert (float(ours['dtd']), float(ours['dtd gain'])) == (63.5, 3.5)
    assert ours['PASCAL Det'] == ours['PASCAL Det gain'] == ''
    assert float(ours['Delta_m']) == pytest.approx(10.0)
    assert (x_learner['method'], x_learner['kind']) == ('X-Learner', 'paper')
    assert x_learner['gains over'] == 'ImageNet Supervised'
    assert float(x_learner['PASCAL Det gain']) == 2.9


@pytest.mark.parametrize('text, message', [
    ('', 'line 1: the header'),
    ('method,AVG Cls,PASCAL Det,baseline\n', 'line 1: the header'),
    (HEADER + 'a,1,2,3,yes\nb,1,2,\n', 'line 3: 4 fields'),
    (HEADER + 'a,1,2,3,yes\nb,1,x,3,\n', "line 3: PASCAL Det 'x'"),
    (HEADER + 'a,1,2,3,yes\na,1,2,3,\n', "line 3: the method 'a'"),
    (HEADER + 'a,1,2,3,no\n', "line 2: baseline must be 'yes'"),
    (HEADER + 'a,1,2,3,yes\nb,1,2,3,yes\n', r"found \['a', 'b'\]"),
    (HEADER + 'a,1,2,3,\n', r'found \[\]'),
])
def test_malformed_reference_files_name_file_and_line(tmp_path, text,
                                                      message):
    path = tmp_path / 'table.csv'
    path.write_text(text)
    with pytest.raises(ValueError, match=f'{re.escape(str(path))}.*{message}'):
        read_reference_rows(str(path))


def test_reference_values_may_be_empty(tmp_path):
    path = tmp_path / 'table.csv'
    path.write_text(HEADER + 'a,1,,3,yes\n\nb,2.5,4,,\n')
    rows, baseline = read_reference_rows(str(path))
    assert baseline == 'a'
    assert rows == {
        'a': {'AVG Cls': 1.0, 'PASCAL Det': None, 'PASCAL Seg': 3.0},
        'b': {'AVG Cls': 2.5, 'PASCAL Det': 4.0, 'PASCAL Seg': None},
    }
