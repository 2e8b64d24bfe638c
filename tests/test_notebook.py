"""The Python API in a real Jupyter kernel: the tutorial notebook (docs/tutorial.ipynb) runs
top to bottom through nbclient, the kernel's interrupt stops training with the iteration
saved, and errors show as one line."""
import importlib.util
import os
import sys
import time
from pathlib import Path

import pytest

from conftest import available_backends

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial.ipynb"
TOOLS = {"nbclient": "nbclient", "nbformat": "nbformat", "ipykernel": "ipykernel"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not {"torch", "tensorflow"} <= set(available_backends()),
                       reason="the tutorial trains with PyTorch and loads the checkpoint with TensorFlow"),
]


@pytest.fixture(autouse=True)
def _jupyter_tools():
    missing = [dist for module, dist in TOOLS.items() if importlib.util.find_spec(module) is None]
    if missing:  # the test extra installs them: an environment without them is incomplete, not exempt
        pytest.fail(f"Jupyter tools missing: {', '.join(missing)}; run: {sys.executable} -m pip install "
                    f"-e '{ROOT}[test]'", pytrace=False)


def test_the_tutorial_runs_in_a_jupyter_kernel(tmp_path, monkeypatch):
    import nbclient
    import nbformat

    monkeypatch.setenv("WGANX_TUTORIAL_ITERATIONS", "300")  # the notebook's own 1,500 take a minute
    notebook = nbformat.read(TUTORIAL, as_version=4)
    start = time.monotonic()
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    seconds = time.monotonic() - start
    cells = [c for c in notebook.cells if c.cell_type == "code"]
    training = next(c for c in cells if "wganx.train(" in c.source and "max_iter=ITERATIONS" in c.source)
    displays = [o for o in training.outputs if o.output_type == "display_data"]
    assert len(displays) == 1, "progress is one line updated in place"
    assert "iteration 300/300" in displays[0].data["text/plain"] and "<progress" in displays[0].data["text/html"]
    streamed = "".join(o.get("text", "") for o in training.outputs if o.output_type == "stream")
    assert "iteration" not in streamed
    assert (tmp_path / "runs" / "8gaussians" / "params_000300.safetensors").is_file()
    images = [c for c in cells if any("image/png" in o.get("data", {}) for o in c.outputs)]
    assert len(images) == 2  # the losses and the critic's contour, inline
    text = "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for c in cells for o in c.outputs)
    assert "already holds a run" in text and "modes_covered" in text
    difference = float(text.split("largest difference:")[1].split()[0])
    assert difference < 1e-5
    assert seconds < 300, f"the tutorial took {seconds:.0f} s in the test suite"


def _reply(client, msg_id, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = client.get_shell_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg["content"]
    raise AssertionError("no reply from the kernel")


def test_the_kernels_interrupt_saves_the_iteration_and_errors_are_one_line(tmp_path):
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path), env=dict(os.environ))
    try:
        run = tmp_path / "run"
        code = ("import wganx\nwganx.train(dataset='8gaussians', arch='mlp', maps=16, latent=2, batch_size=32, "
                "threads=1, max_iter=10**6, save_interval=5, monitor_path='run')")
        msg_id = client.execute(code)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not list(run.glob("params_*.safetensors")):
            time.sleep(0.1)
        assert list(run.glob("params_*.safetensors")), "no checkpoint in 180 s"
        manager.interrupt_kernel()
        reply = _reply(client, msg_id)
        assert (reply["status"], reply["ename"]) == ("error", "TrainingInterrupted")
        assert len(reply["traceback"]) == 1 and "training stopped by SIGINT at iteration" in reply["traceback"][0]
        iteration = int(reply["traceback"][0].split("at iteration ")[1].split(";")[0])

        reply = _reply(client, client.execute("gan = wganx.load('run'); print(gan.iteration)"))
        assert reply["status"] == "ok"
        from wganx import checkpoint
        assert checkpoint.load(checkpoint.latest(run))[1]["iteration"] == iteration  # saved on the way out

        streamed = []
        reply = client.execute_interactive(  # the explicit choice beats the guess
            "wganx.train(dataset='8gaussians', arch='mlp', maps=16, latent=2, batch_size=32, threads=1, max_iter=3, "
            "progress_style='lines', monitor_path='lines')", timeout=180,
            output_hook=lambda msg: streamed.append(msg["content"].get("text", "")))["content"]
        assert reply["status"] == "ok" and "wganx: iteration 3/3" in "".join(streamed)

        reply = _reply(client, client.execute("wganx.train(max_iters=3)"))
        assert (reply["status"], reply["ename"]) == ("error", "WganxError")
        assert reply["traceback"] == ["WganxError: wganx.train: unknown setting 'max_iters'; did you mean "
                                      "'max_iter'? " + reply["evalue"].split("? ", 1)[1]]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
