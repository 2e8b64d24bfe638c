"""wganx.monitor: what lands in --monitor-path, written atomically and read back in
iteration order: tiles, the progress GIF, the loss table and plot, TensorBoard events."""
import csv

import numpy as np
import pytest
from PIL import Image

from wganx import monitor


def gif_frames(path):
    from PIL import ImageSequence

    with Image.open(path) as gif:
        return [np.asarray(frame.convert("RGB"), np.int64) for frame in ImageSequence.Iterator(gif)]


def test_images_map_to_bytes_as_the_nnabla_example_denormalises():
    x = np.array([-1.5, -1.0, 0.0, 1.0, 2.0], np.float32).reshape(1, 1, 1, 5)
    assert monitor.to_uint8(x).ravel().tolist() == [0, 0, 128, 255, 255]  # clipped, rounded
    assert monitor.to_uint8(np.zeros((2, 3, 4, 5))).shape == (2, 4, 5, 3)  # NHWC


def test_tiles_are_a_grid_with_one_pixel_gutters():
    images = np.stack([np.full((3, 2, 2), v, np.float32) for v in (-1.0, 0.0, 1.0)])  # 3 RGB images
    grid = monitor.tile(images)
    assert grid.shape == (2 * 3 + 1, 2 * 3 + 1, 3)  # 2 x 2 cells for 3 images
    assert grid[1:3, 1:3].min() == 0 and (grid[1:3, 4:6] == 128).all() and (grid[4:6, 1:3] == 255).all()
    assert (grid[0] == 0).all() and (grid[:, 3] == 0).all() and (grid[4:6, 4:6] == 0).all()
    assert monitor.tile(np.zeros((6, 1, 2, 2)), columns=3).shape == (2 * 3 + 1, 3 * 3 + 1)  # grey: HW


def test_a_png_is_written_whole_and_scaled_by_whole_pixels(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = monitor.save_png(array, tmp_path / "t.png", scale=2)
    with Image.open(path) as img:
        assert img.size == (8, 6) and np.array_equal(np.asarray(img)[::2, ::2], array)
    assert [p.name for p in tmp_path.iterdir()] == ["t.png"]  # no temporary file left


def test_the_loss_table_survives_a_torn_row_and_resumes_at_an_iteration(tmp_path, capsys):
    log = monitor.LossLog(tmp_path)
    rows = [dict(iteration=i, critic_loss=-i, generator_loss=i / 2, penalty=0.1, negative_critic_loss=i,
                 wasserstein_estimate=i + 0.5, elapsed_s=0.01 * i) for i in (1, 2, 3, 4)]
    for row in rows:
        log.add(row)
    assert log.plot().name == "losses.png" and (tmp_path / "losses.png").stat().st_size > 0
    with open(tmp_path / "losses.csv", "a") as f:
        f.write("5,-5.0,2.5,0.1\0\0")  # a crash in mid-append
    read, damaged = monitor.read_loss_rows(tmp_path / "losses.csv")
    assert [r["iteration"] for r in read] == [1, 2, 3, 4] and damaged == [6]
    resumed = monitor.LossLog(tmp_path, resume_from=3)
    assert [r["iteration"] for r in resumed.rows] == [1, 2, 3]
    assert "dropped 1 damaged rows (line 6)" in capsys.readouterr().err
    with open(tmp_path / "losses.csv", newline="") as f:
        assert [int(r["iteration"]) for r in csv.DictReader(f)] == [1, 2, 3]  # rewritten without them
    assert monitor.LossLog(tmp_path / "empty").plot() is None


def test_points_show_the_critic_as_a_contour_or_their_first_two_axes(tmp_path):
    real = np.random.default_rng(0).standard_normal((64, 2))
    calls = []

    def critic(grid):
        calls.append(grid.shape)
        return grid[:, 0]
    assert monitor.plot_points(real * 0.5, real, critic, tmp_path / "p.png").stat().st_size > 0
    assert calls == [(64 * 64, 2)]
    figure = monitor.points_figure(np.zeros((8, 5)), np.ones((8, 5)), None)  # 5-D: no contour
    assert type(figure._repr_png_()) is bytes


def test_tensorboard_events_hold_the_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    board = monitor.TensorBoard(tmp_path)
    board.add(1, {"critic_loss": -0.5, "penalty": 0.25})
    board.add(2, {"critic_loss": -0.75})
    board.close()
    files = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    values = {(event.step, value.tag): value.simple_value for event in LegacyEventFileLoader(str(files[0])).Load()
              for value in event.summary.value}
    assert values == {(1, "critic_loss"): -0.5, (1, "penalty"): 0.25, (2, "critic_loss"): -0.75}


def test_sample_tiles_are_in_iteration_order_across_a_million(tmp_path):
    samples = tmp_path / "samples"
    samples.mkdir()
    iterations = [999998, 999999, 1000000, 1000001, 10000000]
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    for it, colour in zip(iterations[::-1], colours[::-1]):
        Image.new("RGB", (4, 4), colour).save(samples / monitor.sample_name("fixed", it))
        Image.new("RGB", (4, 4), (9, 9, 9)).save(samples / monitor.sample_name("train", it))
    (samples / "fixed_notes.png").write_bytes(b"")  # not a tile
    assert monitor.sample_name("fixed", 7) == "fixed_000007.png"
    assert [p.name for p in monitor.sample_tiles(samples)] == [f"fixed_{it:06d}.png" for it in iterations]
    assert [p.name for p in monitor.sample_tiles(samples, "train")] == [f"train_{it:06d}.png" for it in iterations]
    monitor.save_gif(monitor.sample_tiles(samples), tmp_path / "progress.gif")
    frames = gif_frames(tmp_path / "progress.gif")
    assert [tuple(int(c) for c in f[0, 0]) for f in frames] == colours
