"""What only the NNabla backend does: data parallelism through its communicator, which
needs GPUs, MPI and NCCL. On a machine without them, a process that mpirun started stops
in one line, and what each rank does around ``comm.all_reduce`` is run for two ranks in
lockstep in one process, the mean taken by the test (the one call such a machine cannot
make). Bounds as in ``tests/test_distributed.py``: float32 1e-5 relative."""
import numpy as np
import pytest

from wganx.cli import main as cli_main
from wganx.distributed import Replicas, launched_by

pytest.importorskip("wganx_nnabla")
pytest.importorskip("nnabla")

FLOAT_BOUND = 1e-5
TOY = ["--backend", "nnabla", "--dataset", "8gaussians", "--arch", "mlp", "--maps", "8", "--latent", "2", "-b", "16",
       "--log-interval", "1", "--save-interval", "2", "--num-samples", "16", "--no-progress", "--threads", "1"]


def test_nnabla_under_mpirun_without_a_communicator_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "0")
    code = cli_main(["train", *TOY, "-i", "1", "--monitor-path", tmp_path / "a"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "one of 2 that mpirun started" in err and "nnabla-ext-cuda" in err and "NCCL" in err, err
    monkeypatch.delenv("OMPI_COMM_WORLD_SIZE")
    code = cli_main(["train", *TOY, "-i", "1", "--distribute", "mpi", "--monitor-path", tmp_path / "b"])
    err = capsys.readouterr().err
    assert code == 2 and "start wganx with mpirun" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("size, rank", [("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),
                                        ("PMI_SIZE", "PMI_RANK"), ("PMIX_SIZE", "PMIX_RANK")])
def test_mpi_launchers_are_recognised(monkeypatch, size, rank):
    """Open MPI's, MPICH's and PMIx's variables, through the mpi engine's record."""
    for name in ("WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RUN_ID", "TF_CONFIG", "OMPI_COMM_WORLD_SIZE",
                 "PMI_SIZE", "PMIX_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(size, "4")
    monkeypatch.setenv(rank, "3")
    assert launched_by() == ("mpirun", 4, 3)


def test_nnabla_ranks_in_lockstep_equal_one_process():
    """What each NNabla rank does around ``comm.all_reduce(..., division=True)``: its slice of
    the global batch, the arrays it reduces (gradients, scalars, running statistics) and the
    update from their mean, run for two ranks in this process with the mean taken here (the
    one call a machine without the communicator cannot make); equal to one process."""
    from wganx.algorithm import step_inputs
    from wganx.build import initial_arrays, load_backend, make_program
    from wganx.parity import Case
    from wganx.plugins import registry

    reg = registry()
    case = Case("mlp", data_kind="points")
    program = make_program(arch=case.arch, arch_config=case.arch_config(reg), batch_size=8, reg=reg)
    sessions = []
    for rank in (0, 1, None):
        backend = load_backend("nnabla", reg=reg)
        if rank is not None:
            backend.replicas = Replicas(size=2, engine="mpi", process=rank, processes=2, first=rank)
        sessions.append(backend.compile(program))
    ranks, alone = sessions[:2], sessions[2]
    start_state = initial_arrays(program, np.random.default_rng(0))
    for s in sessions:
        s.set_state(start_state)
    rng, data = np.random.default_rng(3), np.random.default_rng(1)
    for net in ("critic", "critic", "generator", "critic", "critic", "generator"):
        real = data.standard_normal((8, 2)).astype(np.float32)
        inputs = step_inputs(program, net, rng, real if net == "critic" else None)
        expected = alone.fetch(alone._step(net, inputs))
        graphs = [s._forward_backward(net, s.process_share(inputs)) for s in ranks]
        reduced = [s._reduced(net, g) for s, g in zip(ranks, graphs)]
        for a, b in zip(*reduced):
            mean = (np.array(a.data) + np.array(b.data)) / 2
            a.data, b.data = mean, mean
        values = []
        for s, g in zip(ranks, graphs):  # the rest of Session._step, after the all-reduce
            scalars = s.step_scalars(net)
            v, finite = s._finish_step(net, *s._differentiated(net, g), scalars)
            s.record_update(net, finite)
            values.append(s.fetch(v))
        for v in values:
            assert v == pytest.approx(expected, rel=FLOAT_BOUND, abs=1e-7)
    want = alone.get_state()
    for s in ranks:
        got = s.get_state()
        for k in want:
            assert np.max(np.abs(got[k] - want[k])) <= FLOAT_BOUND * max(np.max(np.abs(want[k])), 1e-6), k
