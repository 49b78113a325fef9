"""Print the parameter count of each stage's model of a training config.

    python tools/count_params.py configs/xlearner/expansion_r50.py
    python tools/count_params.py configs/xlearner/xlearner_r_r50.py   # a recipe: every stage

Expansion configs: each stream, the reconciliation into each task, each task
model, the total, the whole expanded export (and, with pruning, what it
keeps); Squeeze configs: the student (the export), the guidance layers, the
frozen teacher. The models are built on the meta device; no checkpoint is
read. See xlearner_mm/apis/param_count.py.
"""
import argparse

from xlearner_mm.apis import count_params, format_counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('config', help='training or recipe config')
    rows = count_params(parser.parse_args(argv).config)
    print(format_counts(rows))
    return rows


if __name__ == '__main__':
    main()
