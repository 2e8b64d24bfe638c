"""``tf.distribute`` inside a step: one strategy per engine, and the assignments and
reductions that keep every replica's copy of a variable equal."""
from __future__ import annotations

from .runtime import tf

# One strategy per engine and process: a second one would reuse the first one's collective
# keys (measured: "shape mismatch in the collective instance 100"), and TensorFlow allows one
# MultiWorkerMirroredStrategy per process.
_STRATEGIES = {}


def strategy_for(engine: str, make):
    if engine not in _STRATEGIES:
        _STRATEGIES[engine] = make()
    return _STRATEGIES[engine]


def in_replica() -> bool:
    """Inside ``strategy.run`` of a real strategy (not TensorFlow's default one)."""
    return tf.distribute.has_strategy() and not tf.distribute.in_cross_replica_context()


def assign(variable, value):
    """``variable = value``; inside a replica, on that replica's own copy. Every replica assigns
    the same value (made from reduced gradients or global statistics), so the copies stay
    equal without a cross-replica merge."""
    if in_replica():
        tf.raw_ops.AssignVariableOp(resource=variable.handle, value=tf.cast(value, variable.dtype))
    else:
        variable.assign(tf.cast(value, variable.dtype))


def all_reduce(values, op=None):
    """The replicas' mean (or ``op``) of each tensor in ``values``, differentiable; the values
    themselves outside a replica."""
    if not in_replica():
        return list(values)
    return tf.distribute.get_replica_context().all_reduce(op or tf.distribute.ReduceOp.MEAN, list(values))
