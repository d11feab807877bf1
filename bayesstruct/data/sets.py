"""Which data sets there are: their names by source, their numbers of classes, and the error
for a set whose files are missing."""

from __future__ import annotations

__all__ = ["DATASETS", "IDX_SETS", "N_CLASSES", "PAIR_SETS", "SKLEARN_SETS", "DataNotFoundError"]

SKLEARN_SETS = ("digits", "wine", "breast_cancer", "iris", "circles")
IDX_SETS = ("mnist", "fashion-mnist")
PAIR_SETS = ("sts", "pairs-synthetic")
DATASETS: tuple[str, ...] = SKLEARN_SETS + IDX_SETS + PAIR_SETS
#: Class labels of each data set before ``classes`` selects some (``0..N-1``); the config
#: checks ``data.classes`` against it.
N_CLASSES: dict[str, int] = {"digits": 10, "wine": 3, "breast_cancer": 2, "iris": 3,
                             "circles": 2, "mnist": 10, "fashion-mnist": 10, "sts": 6,
                             "pairs-synthetic": 6}


class DataNotFoundError(FileNotFoundError):
    """A data set's files are nowhere to be found (and could not be downloaded)."""
