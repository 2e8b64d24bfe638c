"""The hooks a wganx plugin may implement.

A plugin is any module (or object) registered under the ``wganx`` entry-point group that
implements some of these functions, decorated with :data:`wganx.hookimpl`. Each hook returns
a list of records from :mod:`wganx.records`; wganx collects them from every plugin and
refuses two plugins that claim one name.

Example, a whole plugin module::

    >>> import wganx
    >>> from wganx.records import LossSpec
    >>> class HingeLoss:
    ...     @wganx.hookimpl
    ...     def wganx_losses(self):
    ...         return [LossSpec("hinge-demo",
    ...                          critic=lambda ops, r, f: ops.mean(ops.relu(1.0 - r)) + ops.mean(ops.relu(1.0 + f)),
    ...                          generator=lambda ops, f: -ops.mean(f))]
    >>> registry = wganx.plugins.Registry.from_plugins([HingeLoss()], entry_points=False)
    >>> registry.names("loss")
    ['hinge-demo']
"""
from __future__ import annotations

import pluggy

PROJECT = "wganx"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def wganx_backends():
    """Return a list of :class:`wganx.records.BackendSpec`.

    Example::

        >>> from wganx.records import BackendSpec
        >>> spec = BackendSpec("mine", factory="my_pkg.backend:MyBackend", requires=("my_framework",))
        >>> spec.missing()
        ['my_framework']
    """


@hookspec
def wganx_architectures():
    """Return a list of :class:`wganx.records.ArchitectureSpec`.

    Example::

        >>> import wganx
        >>> arch = wganx.registry().get("architecture", "mlp").build(wganx.ArchConfig(data_kind="points"))
        >>> arch.sample_shape
        (2,)
    """


@hookspec
def wganx_upsamplers():
    """Return a list of :class:`wganx.records.UpsamplerSpec`.

    Example::

        >>> import wganx
        >>> up = wganx.registry().get("upsampler", "deconv")
        >>> params, out_maps = up.params("block", 8, 4)
        >>> out_maps, params["block/W"].shape
        (8, (8, 8, 2, 2))
    """


@hookspec
def wganx_regularizers():
    """Return a list of :class:`wganx.records.RegularizerSpec`.

    Example::

        >>> import numpy as np, wganx
        >>> gp = wganx.registry().get("regularizer", "gp")
        >>> sorted(gp.sample_noise(np.random.default_rng(0), 4, (3, 8, 8)))
        ['eps']
    """


@hookspec
def wganx_losses():
    """Return a list of :class:`wganx.records.LossSpec`.

    Example::

        >>> import wganx
        >>> sorted(wganx.registry().names("loss"))
        ['nonsaturating', 'wasserstein']
    """


@hookspec
def wganx_augmentations():
    """Return a list of :class:`wganx.records.AugmentSpec`: differentiable augmentations of
    what the critic sees (``--augment NAME[:OPTIONS]``).

    Example::

        >>> import numpy as np, wganx
        >>> diffaug = wganx.registry().get("augmentation", "diffaug")
        >>> params = diffaug.sample(np.random.default_rng(0), 4, (3, 8, 8), ("cutout",), 0.0)
        >>> sorted(params), params["aug_cutout"].shape
        (['aug_cutout'], (4, 1, 8, 8))
    """


@hookspec
def wganx_datasets():
    """Return a list of :class:`wganx.records.DatasetSpec`.

    Example::

        >>> import numpy as np, wganx
        >>> data = wganx.registry().get("dataset", "8gaussians").load(None, None, False)
        >>> x, labels = next(data.batches(16, np.random.default_rng(0)))
        >>> x.shape, x.dtype.name, labels
        ((16, 2), 'float32', None)
    """


@hookspec
def wganx_metrics():
    """Return a list of :class:`wganx.records.MetricSpec`.

    Example::

        >>> import wganx
        >>> "modes" in wganx.registry().names("metric")
        True
    """


@hookspec
def wganx_features():
    """Return a list of :class:`wganx.records.FeatureSpec`: feature spaces for image metrics
    (``wganx evaluate --features NAME``), beside each dataset's own domain classifier.

    Example::

        >>> import wganx
        >>> wganx.registry().get("feature", "inception").description
        'Inception-v3 pool features and logits through torch-fidelity (the FID and IS papers)'
    """


@hookspec
def wganx_commands():
    """Return a list of :class:`wganx.records.CommandSpec`: subcommands of ``wganx``.

    Example::

        >>> import wganx
        >>> from wganx.records import CommandSpec
        >>> def hello(name: str = "world"):
        ...     print(f"hello {name}")
        >>> class Hello:
        ...     @wganx.hookimpl
        ...     def wganx_commands(self):
        ...         return [CommandSpec("hello-demo", hello, help="say hello")]
        >>> registry = wganx.plugins.Registry.from_plugins([Hello()], entry_points=False)
        >>> registry.names("command")
        ['hello-demo']
    """
