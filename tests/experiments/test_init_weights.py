"""``net.init_weights``: a state dict of the network starts the fit (the guide's means start at
its weights), read with ``weights_only=True``; a file that does not fit is refused by name."""

import pytest
import torch

from bayesstruct import config, guides
from bayesstruct.errors import ConfigError
from bayesstruct.experiments.base import build_model, build_net, load_data


def _cfg(path, net=("net.kind=mlp", "net.hidden=[8]")):
    return config.resolve("ard-logreg-digits", None, [*net, f"net.init_weights={path}"])


def test_the_guide_starts_at_the_given_weights(tmp_path):
    cfg = _cfg(tmp_path / "w.pt")
    ds = load_data(cfg)
    torch.manual_seed(123)  # another initialisation than the run's seed gives
    net = build_net(cfg, ds)
    torch.save(net.state_dict(), tmp_path / "w.pt")
    model = build_model(cfg, ds)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(dict(model.net.named_parameters())[k].detach(), v)
    guide = guides.MeanField()
    guide.setup(model)
    point = guide.point()
    for k, v in net.state_dict().items():
        torch.testing.assert_close(point[k], v)  # ARD starts its scales at 1: loc = w


def test_a_state_dict_of_another_network_is_refused(tmp_path):
    cfg = _cfg(tmp_path / "w.pt")
    ds = load_data(cfg)
    other = build_net(config.resolve("ard-logreg-digits", None, ["net.kind=mlp",
                                                                 "net.hidden=[9]"]), ds)
    torch.save(other.state_dict(), tmp_path / "w.pt")
    with pytest.raises(ConfigError, match=r"net.init_weights: .*w.pt is not a state dict of "
                                          r"this network \(.*size mismatch"):
        build_model(cfg, ds)


def test_a_missing_or_unsafe_file_is_refused(tmp_path):
    cfg = _cfg(tmp_path / "missing.pt")
    ds = load_data(cfg)
    with pytest.raises(ConfigError, match=r"net.init_weights: checkpoint .*missing.pt does not "
                                          r"exist"):
        build_model(cfg, ds)

    class Sneaky:  # a pickle that would run code: weights_only refuses it
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"fc1.weight": Sneaky()}, tmp_path / "missing.pt")
    with pytest.raises(ConfigError, match=r"net.init_weights: checkpoint .* cannot be read"):
        build_model(cfg, ds)
