from .zoo_init import ZooPretrainedInit

__all__ = ['ZooPretrainedInit']
