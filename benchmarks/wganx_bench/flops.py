"""Counting the floating-point work torch actually runs (``wganx bench``).

``torch.utils.flop_counter.FlopCounterMode`` raises under ``autograd.grad`` (its module
hooks), which the gradient penalty's double backward needs; a plain dispatch mode over the
same formulas (``torch.utils.flop_counter.flop_registry``) sees every aten op, the double
backward's convolutions included. The registry counts convolutions, matrix products and
attention, not element-wise ops, reductions or the optimizer's update: the work a
device's peak figure is quoted for.
"""
from __future__ import annotations

from collections import Counter

from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry


class FlopCounter(TorchDispatchMode):
    """FLOPs of the ops dispatched inside ``with FlopCounter() as c:``, by op (``c.by_op``).

    Example:
        >>> import torch
        >>> with FlopCounter() as c:
        ...     _ = torch.ones(4, 3) @ torch.ones(3, 2)
        >>> c.total
        48
    """

    def __init__(self):
        super().__init__()
        self.by_op: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.by_op[func._overloadpacket.__name__] += int(formula(*args, **kwargs, out_val=out))
        return out

    @property
    def total(self) -> int:
        return sum(self.by_op.values())
