"""The printed summary of ``bayesstruct run`` on a ``nas`` entry: integer parameter counts,
``n/a (1 seed)`` instead of NaN, and the budget said beside the accuracies."""

from __future__ import annotations

from bayesstruct.experiments.nas import NasConfig, budget_note, summary_table


def _row(searcher, seeds, acc, sd, params, change):
    return {"searcher": searcher, "seeds": seeds, "test_acc_mean": acc, "test_acc_sd": sd,
            "search_s_mean": 2.16436, "params_mean": params, "cross_seed_change": change}


def test_one_seed_says_na_and_params_are_integers():
    table = summary_table([_row("darts", 1, 49.0251, None, 2626.0, None)])
    body = table.splitlines()[2].split()
    assert body == ["darts", "49.03", "n/a", "(1", "seed)", "2.2", "2626", "n/a", "(1", "seed)"]
    assert "nan" not in table and "2626.0" not in table


def test_several_seeds_show_their_spread():
    table = summary_table([_row("vardarts", 3, 84.5, 1.3012, 47407.333, 0.5833)])
    assert table.splitlines()[2].split() == ["vardarts", "84.50", "1.30", "2.2", "47407",
                                             "0.58"]


def test_budget_note_names_the_retraining_steps_and_the_caveat():
    nc = NasConfig(epochs=2, retrain_epochs=5, retrain_channels=8)
    note = " ".join(budget_note(nc, 300, 50).split())
    # 300 images in batches of 128: 3 steps per epoch, 5 epochs
    assert "search 2 epoch(s) on 300 training / 50 validation images" in note
    assert "for 5 epoch(s) (about 15 Adam steps of 128 images)" in note
    assert "not comparable with published top-1 figures" in note
    assert "nas.retrain_epochs" in note


def test_budget_note_asks_for_more_steps_only_when_they_are_few():
    few = " ".join(budget_note(NasConfig(retrain_epochs=5), 300, 50).split())
    many = " ".join(budget_note(NasConfig(retrain_epochs=30), 1295, 143).split())
    assert "raise nas.retrain_epochs" in few
    assert "raise nas.retrain_epochs" not in many  # 11 steps x 30 epochs = 330 steps
    assert "not comparable with published top-1 figures" in many
