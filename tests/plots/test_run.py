"""The figures of a run (:mod:`bayesstruct.plots.run`) write decodable PNGs atomically. The
figures of real runs are checked by the CLI tests (pruning.png, snr_curve.png, widths.png,
comparison.png after each kind of run)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from bayesstruct.plots import plot_comparison, save_figure  # noqa: E402


def test_save_figure_writes_a_png_of_the_figures_size_and_nothing_else(tmp_path):
    fig, ax = plt.subplots(figsize=(4, 3), dpi=50)
    ax.plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "f.png", "a title")
    image = mpimg.imread(path)
    assert image.shape[:2] == (3 * 120, 4 * 120)  # written at 120 dpi
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png"]  # no temporary left
    assert not plt.get_fignums()  # closed


def test_comparison_draws_one_line_per_method(tmp_path, monkeypatch):
    drawn = {}
    real = save_figure.__globals__["save_figure"]

    def spy(fig, path, title):
        drawn["labels"] = [line.get_label() for line in fig.axes[0].get_lines()]
        return real(fig, path, title)

    monkeypatch.setitem(plot_comparison.__globals__, "save_figure", spy)
    rows = [{"method": m, "fraction": f, "removed": f, "acc": 0.9 - f / 2}
            for m in ("random", "variational") for f in (0.0, 0.5, 0.9)]
    path = plot_comparison(rows, tmp_path / "c.png", title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [lab for lab in drawn["labels"] if not lab.startswith("_")] == ["random",
                                                                            "variational"]
