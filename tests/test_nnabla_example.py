"""The NNabla WGAN-GP example's ``params_N.h5`` in and out.

The example's models are restated here from ``models.py`` of ``sony/nnabla-examples``
(``image-generation/wgan/``), with its scope names, and their parameters are written by
NNabla's own ``nn.save_parameters``: an imported file must generate, on every backend, what
the example's ``generator(z, test=True)`` generates from the same latent codes, and an
exported one must load into the example unchanged."""
import numpy as np
import pytest

from wganx import checkpoint
from wganx.cli import main as cli_main
from wganx.generate import load_session

from conftest import available_backends

nn = pytest.importorskip("nnabla")
F = pytest.importorskip("nnabla.functions")
PF = pytest.importorskip("nnabla.parametric_functions")
h5py = pytest.importorskip("h5py")

MAPS, LATENT, BATCH = 2, 4, 3


def example_upsample(h, maps, up, test, name):
    if up == "deconv":
        h = PF.deconvolution(h, maps * 2, (2, 2), (0, 0), (2, 2), name=name)
    else:
        h = PF.convolution(h, maps, (3, 3), (1, 1), name=name)
        h = F.unpooling(h, (2, 2)) if up == "unpooling" else F.interpolate(h, scale=(2, 2), mode=up)
    return F.relu(PF.batch_normalization(h, batch_stat=not test, name=name))


def example_generator(z, maps, up, test):
    with nn.parameter_scope("generator"):
        h = PF.affine(z, maps * 4 * 4 * 4)
        h = F.reshape(h, [z.shape[0], maps * 4, 4, 4])
        h = F.relu(PF.batch_normalization(h, batch_stat=not test))
        for i, mult in enumerate((4, 2, 1)):
            h = example_upsample(h, maps * mult, up, test, name=f"convblock-{i + 1}")
        return F.tanh(PF.convolution(h, 3, (3, 3), (1, 1), name="to-RGB"))


def example_discriminator(x, maps):
    with nn.parameter_scope("discriminator"):
        h = x
        for i, mult in enumerate((1, 2, 4)):
            h = F.leaky_relu(F.average_pooling(PF.convolution(h, maps * mult, (3, 3), name=f"conv-{i + 1}"), (2, 2)),
                             0.01)
        return PF.affine(h, 1)


def example_outputs(up, z, x):
    """G(z) in test mode and D(x) of the example's models with the current parameters."""
    g = example_generator(nn.Variable.from_numpy_array(z), MAPS, up, test=True)
    d = example_discriminator(nn.Variable.from_numpy_array(x), MAPS)
    g.forward()
    d.forward()
    return g.d.copy(), d.d.copy()


@pytest.fixture(params=["nearest", "linear", "unpooling", "deconv"])
def example_file(request, tmp_path):
    """``params_41.h5`` as the example's train.py writes it after 42 iterations."""
    up = request.param
    nn.clear_parameters()
    np.random.seed(0)  # NNabla's initializers draw from numpy's global generator
    rng = np.random.default_rng(1)
    z = rng.standard_normal((BATCH, LATENT)).astype(np.float32)
    x = rng.uniform(-1, 1, (BATCH, 3, 32, 32)).astype(np.float32)
    example_outputs(up, z, x)  # creates every parameter
    for name, p in nn.get_parameters(grad_only=False).items():  # trained-looking statistics and biases
        if name.endswith("/mean") or name.endswith("/b") or name.endswith("/beta"):
            p.d = rng.normal(0, 0.3, p.shape).astype(np.float32)
        elif name.endswith("/var") or name.endswith("/gamma"):
            p.d = rng.uniform(0.5, 2.0, p.shape).astype(np.float32)
    expected = example_outputs(up, z, x)
    path = tmp_path / "params_41.h5"
    nn.save_parameters(str(path))
    yield up, path, z, x, expected
    nn.clear_parameters()


def wganx(capsys, *args):
    code = cli_main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_import_generates_what_the_example_generates_on_every_backend(example_file, tmp_path, capsys):
    up, path, z, x, (images, critic) = example_file
    ckpt = tmp_path / "imported.safetensors"
    code, err = wganx(capsys, "import", "--format", "nnabla-h5", path, "--maps", MAPS, "--up", up,
                      "--latent", LATENT, "-o", ckpt)
    assert code == 0, err
    arrays, meta = checkpoint.load(ckpt)
    assert meta["iteration"] == 42 and meta["config"]["up"] == up and meta["config"]["maps"] == MAPS
    for backend in available_backends():
        session, program, _ = load_session(ckpt, backend, batch_size=BATCH)
        np.testing.assert_allclose(session.generate(z), images, rtol=3e-5, atol=3e-6, err_msg=f"{backend} {up}")
        np.testing.assert_allclose(session.critic_values(x), critic, rtol=3e-5, atol=3e-6, err_msg=f"{backend} {up}")
    out = tmp_path / "gen"
    code, err = wganx(capsys, "generate", "--model-load-path", ckpt, "--num-images", "5", "--monitor-path", out)
    assert code == 0 and (out / "generated.png").exists(), err


def test_export_loads_into_the_example_unchanged(example_file, tmp_path, capsys):
    up, path, z, x, (images, critic) = example_file
    ckpt, back = tmp_path / "imported.safetensors", tmp_path / "params_41.h5"
    assert wganx(capsys, "import", path, "--maps", MAPS, "--up", up, "--latent", LATENT, "-o", ckpt)[0] == 0
    code, err = wganx(capsys, "export", "--format", "nnabla-h5", ckpt, "-o", tmp_path / "out" / "params_41.h5")
    assert code == 0, err
    back = tmp_path / "out" / "params_41.h5"
    with h5py.File(path, "r") as a, h5py.File(back, "r") as b:
        names = []
        a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        exported = []
        b.visititems(lambda n, o: exported.append(n) if isinstance(o, h5py.Dataset) else None)
        assert sorted(names) == sorted(exported)
        for name in names:
            np.testing.assert_array_equal(b[name][()], a[name][()], err_msg=name)
            assert bool(b[name].attrs["need_grad"]) == bool(a[name].attrs["need_grad"]), name
    nn.clear_parameters()
    nn.load_parameters(str(back))
    got_images, got_critic = example_outputs(up, z, x)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_critic, critic)


def test_wrong_settings_or_files_are_one_line(example_file, tmp_path, capsys):
    up, path, *_ = example_file
    code, err = wganx(capsys, "import", path, "--maps", MAPS * 2, "--up", up, "--latent", LATENT, "-o",
                      tmp_path / "x.safetensors")
    assert code == 2 and "is not the NNabla example's model for --maps 4" in err and "shapes differ" in err, err
    other = "nearest" if up == "deconv" else "deconv"
    code, err = wganx(capsys, "import", path, "--maps", MAPS, "--up", other, "--latent", LATENT, "-o",
                      tmp_path / "x.safetensors")
    assert code == 2 and "missing generator/convblock-1/" in err, err
    code, err = wganx(capsys, "generate", "--model-load-path", path, "--monitor-path", tmp_path / "gen")
    assert code == 2 and "wganx import --format nnabla-h5" in err and len(err.strip().splitlines()) == 1, err
    (tmp_path / "params_1.h5").write_bytes(b"not hdf5")
    code, err = wganx(capsys, "import", tmp_path / "params_1.h5", "-o", tmp_path / "x.safetensors")
    assert code == 2 and "not a readable HDF5 file" in err, err
    assert not (tmp_path / "x.safetensors").exists()
    code, err = wganx(capsys, "import", path, "--up", "bilinear", "-o", tmp_path / "x.safetensors")
    assert code == 2 and "no upsampler 'bilinear'" in err, err
