"""Checkpoints that a crash while saving cannot destroy.

mmengine 0.10.7 writes a checkpoint through ``LocalBackend.put`` (``open(path,
'wb')``: a kill mid-write leaves a torn file under the final name), and
``CheckpointHook`` removes the outdated checkpoint *before* writing the new
one, then writes ``last_checkpoint`` with a plain ``open``. A crash at the
wrong moment thus leaves no loadable checkpoint, or a ``last_checkpoint``
pointing at a torn one, and ``--resume`` fails.
"""
import glob
import os
import os.path as osp
from contextlib import contextmanager
from pathlib import Path
from typing import Union

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook

from xlearner_mm.registry import HOOKS
from xlearner_mm.utils import atomic_write_bytes, atomic_write_text
from xlearner_mm.utils.atomic_io import atomic_tmp_pattern

ATOMIC_LOCAL_BACKEND = 'atomic_local'


@register_backend(ATOMIC_LOCAL_BACKEND)
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose ``put`` / ``put_text`` write a
    temporary file in the destination's directory, fsync it and rename it
    over the destination: the destination holds the old content or the new
    one, never part of it.

    Selected with ``backend_args=dict(backend='atomic_local')``, which
    :class:`AtomicCheckpointHook` does for local ``out_dir``.
    """

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(obj, str(filepath))

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        atomic_write_text(obj, str(filepath), encoding=encoding)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """:class:`mmengine.hooks.CheckpointHook` that never leaves a torn or
    missing checkpoint behind when the process dies while saving.

    * Every checkpoint is written atomically (:class:`AtomicLocalBackend`:
      temporary file, fsync, ``os.replace``) when ``out_dir`` is local and no
      ``backend_args`` are given; remote backends are left as configured.
    * ``last_checkpoint`` (what ``resume=True`` reads) is written atomically,
      after the checkpoint it names.
    * Outdated checkpoints (``max_keep_ckpts``) and the previous best
      checkpoint (``save_best``) are removed only after that.
    * Temporary files a killed save left in ``out_dir`` are removed in
      ``before_train``.

    Arguments: those of :class:`mmengine.hooks.CheckpointHook`.

    Examples:
        In ``default_hooks``, in place of mmengine's CheckpointHook:

        >>> default_hooks = dict(
        ...     checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False,
        ...                     interval=5000, max_keep_ckpts=3))
    """

    def before_train(self, runner) -> None:
        out_dir = self.out_dir if self.out_dir is not None else \
            runner.work_dir
        if (self.backend_args is None and self.file_client_args is None
                and '://' not in str(out_dir)):
            self.backend_args = dict(backend=ATOMIC_LOCAL_BACKEND)
        super().before_train(runner)
        if is_main_process() and isinstance(self.file_backend,
                                            AtomicLocalBackend):
            self._remove_stale_tmp_files(runner)

    def _remove_stale_tmp_files(self, runner) -> None:
        """Remove what saves killed mid-write left (never a checkpoint: the
        final names are only ever complete files)."""
        for path in (osp.join(self.out_dir, '*'),
                     osp.join(runner.work_dir, 'last_checkpoint')):
            for tmp in glob.glob(atomic_tmp_pattern(path)):
                os.remove(tmp)
                runner.logger.warning(
                    f'Removed {tmp}, left by a checkpoint save that was '
                    'interrupted.')

    def _save_checkpoint_with_step(self, runner, step, meta):
        """mmengine's ``_save_checkpoint_with_step`` in a safe order: save
        the new checkpoint, point ``last_checkpoint`` at it, and only then
        remove the checkpoint that ``max_keep_ckpts`` pushes out.

        A private method of CheckpointHook, which calls it for every save;
        no public hook point lies between its steps
        (``tests/test_compat.py`` checks that it is still called)."""
        outdated = None
        # The same bookkeeping as mmengine's (_save_checkpoint and
        # _save_best_checkpoint may both save at one step).
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        atomic_write_text(self.last_ckpt,
                          osp.join(runner.work_dir, 'last_checkpoint'))
        if outdated is not None:
            self._remove_checkpoint(
                self.file_backend.join_path(
                    self.out_dir, self.filename_tmpl.format(outdated)))

    def _remove_checkpoint(self, path: str) -> None:
        """Remove a checkpoint file (or directory, as deepspeed saves)."""
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):
            self.file_backend.rmtree(path)

    @contextmanager
    def _removals_deferred(self):
        """Defer the ``remove`` / ``rmtree`` calls made in the body until the
        body has returned; on an error nothing is removed."""
        backend = self.file_backend
        deferred = []
        backend.remove = lambda path: deferred.append(
            (type(backend).remove, path))
        backend.rmtree = lambda path: deferred.append(
            (type(backend).rmtree, path))
        try:
            yield
        finally:
            # The instance attributes shadow the class methods; deleting
            # them restores the backend.
            del backend.remove, backend.rmtree
        for remove, path in deferred:
            remove(backend, path)

    def after_val_epoch(self, runner, metrics) -> None:
        """mmengine's (save the best checkpoint), but the previous best
        checkpoint is removed after the new best one is saved, not before."""
        with self._removals_deferred():
            super().after_val_epoch(runner, metrics)
