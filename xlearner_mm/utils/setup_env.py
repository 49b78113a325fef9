import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every module of xlearner_mm and of the codebases it drives so
    that their registries are filled, and make ``xlearner_mm`` the default scope.

    Args:
        init_default_scope (bool): Whether to set the default scope to
            ``xlearner_mm`` (a new instance named ``xlearner_mm-<time>`` is made
            when another scope is current, as mmdet does). Defaults to True.
    """
    import mmdet.utils
    import mmpretrain.utils
    import mmseg.utils
    mmdet.utils.register_all_modules(init_default_scope=False)
    mmpretrain.utils.register_all_modules(init_default_scope=False)
    mmseg.utils.register_all_modules(init_default_scope=False)

    import xlearner_mm.datasets  # noqa: F401
    import xlearner_mm.engine  # noqa: F401
    import xlearner_mm.models  # noqa: F401
    import xlearner_mm.visualization  # noqa: F401

    if not init_default_scope:
        return
    never_created = (DefaultScope.get_current_instance() is None
                     or not DefaultScope.check_instance_created('xlearner_mm'))
    if never_created:
        DefaultScope.get_instance('xlearner_mm', scope_name='xlearner_mm')
        return
    current_scope = DefaultScope.get_current_instance()
    if current_scope.scope_name != 'xlearner_mm':
        warnings.warn('The current default scope '
                      f'"{current_scope.scope_name}" is not "xlearner_mm", '
                      '`register_all_modules` will force the current '
                      'default scope to be "xlearner_mm".')
        new_instance_name = f'xlearner_mm-{datetime.datetime.now()}'
        DefaultScope.get_instance(new_instance_name, scope_name='xlearner_mm')
