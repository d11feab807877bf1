"""The guide contract shared by every variational family.

A guide is an ``nn.Module`` whose parameters are the variational parameters ``theta``. It is
both

* a Pyro guide -- ``guide(x, y)`` emits one sample site per model site, so
  ``pyro.infer.SVI(model, guide, ...)`` with any ELBO works -- and
* a *fast path*: :meth:`Guide.loss` returns a one-sample estimate of the negative ELBO
  computed without Pyro's tracing (local reparameterisation, analytic KL), which is what the
  SVI engine optimises. Tests check that the two agree in expectation.

The guide holds its model in a plain attribute (not a submodule), so ``guide.parameters()``
is exactly ``theta``.
"""

from __future__ import annotations

from abc import abstractmethod

from torch import Tensor, nn

from ..models.bayesnet import BayesianNet
from ..parallel import nll_scale

__all__ = ["Guide", "site_key"]


def site_key(name: str) -> str:
    """``fc1.weight`` -> ``fc1__weight`` (``nn.ParameterDict`` keys cannot hold dots)."""
    return name.replace(".", "__")


class Guide(nn.Module):
    """Base class; subclasses create their parameters in :meth:`_setup`."""

    name: str = ""

    def __init__(self, model: BayesianNet | None = None) -> None:
        super().__init__()
        self.__dict__["model"] = None
        if model is not None:
            self.setup(model)

    def setup(self, model: BayesianNet) -> Guide:
        """Create the variational parameters for ``model``'s sites (idempotent per model)."""
        if self.model is model:
            return self
        if self.model is not None:
            raise ValueError("this guide is already set up for another model")
        self.__dict__["model"] = model
        self._setup(model)
        return self

    @abstractmethod
    def _setup(self, model: BayesianNet) -> None: ...

    @abstractmethod
    def forward(self, *args, **kwargs) -> None:
        """The Pyro guide: one sample site per latent of the model."""

    @abstractmethod
    def loss(self, x: Tensor, y: Tensor) -> Tensor:
        """One-sample estimate of ``-ELBO`` over the whole data set from a minibatch.

        ``N/B * sum_batch -log p(y | x, w) + beta * KL``, with ``N = model.num_data`` and
        ``beta = model.kl_weight``.
        """

    @abstractmethod
    def point(self) -> dict[str, Tensor]:
        """A point estimate of every parameter site (posterior mean, or the MAP value)."""

    def constrain_(self) -> None:
        """Called after every optimiser step: project the variational parameters onto the
        guide's constraints (none by default; :class:`~bayesstruct.guides.MeanField`'s
        ``max_scale``)."""

    def mean_values(self) -> dict[str, Tensor]:
        """Site values of the posterior-mean network, what validation evaluates:
        :meth:`point`, unless the prior's weights are nonlinear in its latents
        (:meth:`~bayesstruct.priors.base.Prior.mean_site_values`)."""
        return self.point()

    @abstractmethod
    def moments(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Detached ``(loc, scale)`` of the weight sites, for empirical Bayes."""

    @abstractmethod
    def sample(self, num_draws: int) -> dict[str, Tensor]:
        """``num_draws`` draws of every model site (parameters and hyper-latents)."""

    def variational(self) -> dict[str, tuple[str, Tensor, Tensor]]:
        """``name -> (family, loc, scale)`` of each factor, where the family has a density."""
        return {}

    def _scale_n(self, x: Tensor) -> float:
        """``N / B``; in a data-parallel step ``W N / B`` over the global batch
        (:func:`bayesstruct.parallel.nll_scale`)."""
        return nll_scale(self.model.num_data, x.shape[0])
