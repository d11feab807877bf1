"""Figures reported by the sources of the methods, quoted beside ours by the benchmarks that
print them (never by the library: a run's metrics.json holds only what the run measured).

Each table names where its figures come from and under which protocol; our benchmark runs
the same protocol where the machine allows and says where it differs.
"""

from __future__ import annotations

#: L2 coefficients by hypergradients (Luketina et al. 2016's greedy loop; the protocol of
#: benchmarks/hypergrad_seed.py): LeNet-300-100 on Fashion-MNIST, test cross-entropy and
#: 1 - AUC for no regularisation, one shared coefficient, one coefficient per parameter
HYPERGRAD_L2: dict[str, dict[str, float]] = {
    "none": {"test_ce": 1.4723, "one_minus_auc": 0.0102},
    "shared": {"test_ce": 1.4769, "one_minus_auc": 0.0135},
    "individual": {"test_ce": 1.4651, "one_minus_auc": 0.0017}}

#: the RBF width of kernel logistic regression learned by the honest loop (Pedregosa 2016's
#: implicit hypergradient): test cross-entropy and AUC before and after
HYPERGRAD_KERNEL: dict[str, float] = {"ce_before": 0.63, "ce_after": 0.44, "auc_before": 0.53,
                                      "auc_after": 0.84}

#: architecture search on Fashion-MNIST: top-1 (%) of the retrained cell and GPU hours of the
#: search, per searcher (DARTS, Liu et al. 2019; random search, Li & Talwalkar 2019; SPOS,
#: Guo et al. 2020; variational DARTS with a Gumbel-softmax operation choice)
NAS_TOP1: dict[str, tuple[float, float]] = {
    "darts": (91.22, 2.0), "random": (90.79, 1.5), "spos": (89.54, 0.5),
    "vardarts": (91.36, 5.0)}
