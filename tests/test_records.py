"""wganx.records: the records plugins return. They are plain frozen data; what behaviour they
have (engine names, a backend's missing modules and lazy class, an architecture's critic
norms) is tested here."""
import dataclasses
import subprocess
import sys

import pytest

from wganx.errors import WganxError
from wganx.records import ArchitectureSpec, BackendSpec, CommandSpec, EngineSpec, LossSpec, RegularizerSpec


def test_records_are_frozen():
    spec = LossSpec("hinge", critic=None, generator=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"


def test_engines_may_be_named_or_described_and_read_alike():
    described = EngineSpec("torchrun", launcher="torchrun", example="torchrun --nproc-per-node 2 ...")
    spec = BackendSpec("b", "pkg:Backend", engines=["mpi", described])
    assert spec.engines == (EngineSpec("mpi"), described) and spec.engine_names == ("mpi", "torchrun")
    assert BackendSpec("b", "pkg:Backend").engines == ()


def test_missing_modules_are_found_without_importing_them():
    """Listing plugins must not import a framework: ``missing`` looks modules up only."""
    code = ("import sys; from wganx.records import BackendSpec\n"
            "spec = BackendSpec('b', 'x:Y', requires=('json', 'colorsys', 'no_such_module_wganx'))\n"
            "print(spec.missing(), 'colorsys' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["['no_such_module_wganx']", "False"], out.stderr


def test_the_backend_class_is_imported_only_when_loaded():
    spec = BackendSpec("b", "collections:OrderedDict")
    import collections

    assert spec.load() is collections.OrderedDict
    with pytest.raises(AttributeError):
        BackendSpec("b", "collections:NoSuchClass").load()


def test_an_architecture_names_the_critic_norms_it_offers():
    spec = ArchitectureSpec("resnet", build=None, critic_norms=("layer", "none", "spectral"))
    spec.check_critic_norm("spectral")
    with pytest.raises(WganxError, match=r"^--critic-norm batch: architecture 'resnet' offers layer, none, spectral$"):
        spec.check_critic_norm("batch")
    with pytest.raises(WganxError, match="offers none$"):
        ArchitectureSpec("mlp", build=None).check_critic_norm("layer")


def test_defaults_describe_a_plain_record():
    reg = RegularizerSpec("none")
    assert reg.penalty is None and reg.clip is None and reg.sample_noise(None, 4, (2,)) == {}
    assert CommandSpec("hello", command=print, help="say hello").description == "say hello"
