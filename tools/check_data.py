"""Count each training source of a config on disk against the train size
its dataset config states (paper Table 1), from the annotation files and
folders, without decoding images.

    python tools/check_data.py configs/xlearner/expansion_r50.py

Exits with 1 when a source is missing or has fewer images than stated. See
xlearner_mm/datasets/data_check.py.
"""
import argparse
import sys

from mmengine.config import Config

from xlearner_mm.datasets import check_data, format_data_report
from xlearner_mm.utils import register_all_modules


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='an Expansion or Squeeze config')
    register_all_modules(init_default_scope=False)
    rows = check_data(Config.fromfile(parser.parse_args(argv).config))
    print(format_data_report(rows))
    return int(any(r.status.startswith(('MISSING', 'SHORT')) for r in rows))


if __name__ == '__main__':
    sys.exit(main())
