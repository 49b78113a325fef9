"""What a rehearsal found, per stage, and what the whole recipe will cost:
the figures measured here (parameters, checkpoint size, FLOPs counted per
iteration and their ideal, peak memory, seconds per iteration), the source
mix of the global batch with the epochs it gives, and the projection of
FLOPs and GPU-hours at a stated throughput."""
import statistics
from types import SimpleNamespace
from typing import Dict, List, Optional

from xlearner_mm.datasets import SourceMixSampler
from xlearner_mm.utils import markdown_table


def stage_costs(costs: List[dict]) -> dict:
    """One stage's measured figures from the cost files of its runs
    (:class:`IterationCostHook`, main process): the counted iteration's
    FLOPs, every timed iteration, the largest peak memory."""
    counted = [c for c in costs if c.get('flops_per_iter')]
    first = counted[0] if counted else (costs[0] if costs else {})
    seconds = [s for c in costs for s in c.get('sec_per_iter', [])]
    return dict(
        flops_per_iter_per_gpu=first.get('flops_per_iter'),
        ideal_flops_per_iter_per_gpu=first.get('ideal_flops_per_iter'),
        params_total=first.get('params_total'),
        params_trained=first.get('params_trained'),
        params_held_teachers=sum(
            (first.get('params_held_teachers') or {}).values()),
        peak_memory_bytes=max(
            (c.get('peak_memory_bytes') or 0 for c in costs), default=None),
        peak_memory_kind=first.get('peak_memory_kind'),
        sec_per_iter=seconds,
        sec_per_iter_median=statistics.median(seconds) if seconds else None,
        world_size=first.get('world_size', 1))


def project(row: dict, tflops: float) -> dict:
    """FLOPs of the whole stage and its GPU-hours: the per-GPU FLOPs of one
    iteration times the config's GPUs times its real ``max_iters``, at
    ``tflops`` TFLOP/s achieved per GPU."""
    per_gpu = row.get('flops_per_iter_per_gpu')
    if not per_gpu or not row.get('max_iters'):
        return dict(flops_per_iter=None, flops_total=None, gpu_hours=None,
                    hours=None)
    per_iter = per_gpu * row['num_gpus']
    total = per_iter * row['max_iters']
    gpu_hours = total / (tflops * 1e12) / 3600
    return dict(flops_per_iter=per_iter, flops_total=total,
                gpu_hours=gpu_hours, hours=gpu_hours / row['num_gpus'])


def source_mix_rows(cfg, sources: Dict[str, List[dict]],
                    num_gpus: int) -> List[dict]:
    """Each source's share of the global batch of ``num_gpus`` GPUs (as
    :class:`SourceMixSampler` reads ``source_ratio``), its images per global
    batch and the epochs of it that the config's real ``max_iters`` give."""
    loaders = cfg.train_dataloader
    multi_task = 'dataset' not in loaders
    max_iters = cfg.train_cfg.get('max_iters')
    rows = []
    for task, found in sources.items():
        loader = loaders[task] if multi_task else loaders
        sampler = loader.get('sampler') or {}
        ratio = (sampler.get('source_ratio', 'size') if str(
            sampler.get('type', '')).endswith('SourceMixSampler') else 'size')
        dataset = SimpleNamespace(
            task=task,
            source_names=[s['name'] for s in found],
            datasets=[range(s['size']) for s in found])
        shares = SourceMixSampler.shares(dataset, ratio)
        global_batch = loader['batch_size'] * num_gpus
        for source, exact in zip(found, shares):
            share = float(exact)
            per_batch = global_batch * share
            rows.append(dict(
                task=task,
                source=source['name'],
                size=source['size'],
                share=share,
                images_per_global_batch=per_batch,
                epochs=max_iters * per_batch / source['size']
                if max_iters else None))
    return rows


def _si(value: Optional[float], unit: str = '') -> str:
    if value is None:
        return 'n/a'
    for factor, prefix in ((1e18, 'E'), (1e15, 'P'), (1e12, 'T'),
                           (1e9, 'G'), (1e6, 'M'), (1e3, 'k')):
        if abs(value) >= factor:
            return f'{value / factor:.2f} {prefix}{unit}'
    return f'{value:.3g} {unit}'.strip()


def _num(value, fmt='{:.2f}') -> str:
    return 'n/a' if value is None else fmt.format(value)


def format_report(report: dict) -> str:
    """``name: value`` lines per stage, the stage table, the source-mix
    table and the whole recipe's projection, as Markdown."""
    tflops = report['tflops']
    lines = [
        f'rehearsal of {report["config"]}: {report["iters"]} iterations per '
        f'stage at img-scale {report["img_scale"]}, world size '
        f'{report["world_size"]}, {report["device"]}, torch '
        f'{report["torch"]}{", AMP" if report["amp"] else ""}',
        f'assumption: {tflops:g} TFLOP/s achieved per GPU (--tflops); '
        'FLOPs are counted at the rehearsed image sizes'
        + ('' if report['img_scale'] == 1 else
           f' (x{report["img_scale"]}: not the real sizes)'), ''
    ]
    table, total_flops, total_gpu_hours = [], 0.0, 0.0
    for row in report['stages']:
        proj = project(row, tflops)
        name = row['stage']
        ratio = (row['flops_per_iter_per_gpu'] /
                 row['ideal_flops_per_iter_per_gpu']
                 if row.get('flops_per_iter_per_gpu')
                 and row.get('ideal_flops_per_iter_per_gpu') else None)
        for key, value in (
                ('params_total', row['params_total']),
                ('params_trained', row['params_trained']),
                ('checkpoint_bytes', row['checkpoint_bytes']),
                ('flops_per_iter_per_gpu', row['flops_per_iter_per_gpu']),
                ('ideal_flops_per_iter_per_gpu',
                 row['ideal_flops_per_iter_per_gpu']),
                ('flops_to_ideal', ratio),
                ('peak_memory_bytes', row['peak_memory_bytes']),
                ('sec_per_iter', row['sec_per_iter_median']),
                ('max_iters', row['max_iters']),
                ('num_gpus', row['num_gpus']),
                ('flops_total', proj['flops_total']),
                ('gpu_hours', proj['gpu_hours'])):
            lines.append(f'{name}.{key}: {value}')
        total_flops += proj['flops_total'] or 0
        total_gpu_hours += proj['gpu_hours'] or 0
        table.append([
            name,
            f'{_si(row["params_total"])} / {_si(row["params_trained"])}',
            _si(row['checkpoint_bytes'], 'B'),
            _si(row['flops_per_iter_per_gpu'], 'FLOP'),
            _num(ratio),
            f'{_si(row["peak_memory_bytes"], "B")}',
            _num(row['sec_per_iter_median']),
            f'{row["max_iters"]} x {row["num_gpus"]} GPUs',
            _si(proj['flops_total'], 'FLOP'),
            _num(proj['gpu_hours'], '{:.3g}'),
        ])
    lines.append(f'recipe.flops_total: {total_flops}')
    lines.append(f'recipe.gpu_hours: {total_gpu_hours}')
    lines += ['', markdown_table(
        ['stage', 'params (total / trained)', 'checkpoint',
         'FLOPs/iter/GPU', 'to ideal', 'peak memory/process', 's/iter here',
         'schedule', 'FLOPs (stage)', f'GPU-h @ {tflops:g} TFLOP/s'],
        table)]
    mix = [[row['stage'], s['task'], s['source'], f'{s["size"]:,}',
            f'{100 * s["share"]:.1f}%', f'{s["images_per_global_batch"]:.2f}',
            _num(s['epochs'])]
           for row in report['stages'] for s in row['sources']]
    lines += ['', markdown_table(
        ['stage', 'task', 'source', 'images', 'share of global batch',
         'images / global batch', 'epochs over max_iters'], mix)]
    lines += ['', f'recipe: {_si(total_flops, "FLOP")}, '
              f'{total_gpu_hours:.3g} GPU-hours at {tflops:g} TFLOP/s']
    return '\n'.join(lines)


def format_cost_table(reports: List[dict]) -> str:
    """One Markdown table of several rehearsals (one recipe each): per
    stage its parameters, FLOPs per iteration and their ratio to the
    ideal, the stage's FLOPs and GPU-hours, and its sources' epochs; per
    recipe its total."""
    rows = []
    for report in reports:
        tflops = report['tflops']
        recipe = report['config']
        total_flops = total_hours = 0.0
        for row in report['stages']:
            proj = project(row, tflops)
            total_flops += proj['flops_total'] or 0
            total_hours += proj['gpu_hours'] or 0
            ideal = row.get('ideal_flops_per_iter_per_gpu')
            ratio = (row['flops_per_iter_per_gpu'] / ideal
                     if ideal and row.get('flops_per_iter_per_gpu') else None)
            epochs = ', '.join(
                f'{s["source"]} {s["epochs"]:.1f}' for s in row['sources']
                if s.get('epochs') is not None)
            rows.append([
                f'`{recipe}`', row['stage'],
                f'{_si(row["params_total"])} / {_si(row["params_trained"])}',
                _si(row['flops_per_iter_per_gpu'], 'FLOP'), _num(ratio),
                f'{row["max_iters"]} x {row["num_gpus"]}',
                _si(proj['flops_total'], 'FLOP'),
                _num(proj['gpu_hours'], '{:,.0f}'), epochs or '-'
            ])
        rows.append([f'`{recipe}`', '**all**', '', '', '', '',
                     f'**{_si(total_flops, "FLOP")}**',
                     f'**{total_hours:,.0f}**', ''])
    tflops = {r['tflops'] for r in reports}
    return markdown_table(
        ['recipe', 'stage', 'params (total / trained)', 'FLOPs/iter/GPU',
         'to ideal', 'iters x GPUs', 'FLOPs', 'GPU-h @ ' +
         '/'.join(f'{t:g}' for t in sorted(tflops)) + ' TFLOP/s',
         'epochs per source'], rows)
