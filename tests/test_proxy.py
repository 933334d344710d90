"""tp_tools.proxy: values cross as data (and only as data), setup objects by name, modules by
structure, generators advance, gradients flow through a call and through a nested call back."""
import socket
import threading

import pytest
import torch
from torch import nn

from tp_tools import proxy


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    model = nn.Linear(3, 2)
    callee = proxy.Peer(b, names={"model": model})

    def square_sum(x, w=1.0):
        return (w * x ** 2).sum(dim=1), {"n": x.shape[0], "shape": x.shape}

    def apply_model(m, x):
        return m(x)

    def call_back(f, x):
        return f(x) * 3

    def noisy(g):
        return torch.rand(2, generator=g)

    callee.functions.update(square_sum=square_sum, apply_model=apply_model, call_back=call_back, noisy=noisy,
                            evil=lambda: object())
    thread = threading.Thread(target=callee.serve_forever, daemon=True)
    thread.start()
    caller = proxy.Peer(a, names={"model": model})
    yield caller, model
    a.close()
    thread.join(5)


def test_values_and_gradients_cross(pair):
    caller, _ = pair
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    out, info = proxy.Remote(caller, "square_sum")(x, w=2.0)
    assert info == {"n": 4, "shape": torch.Size([4, 3])}
    torch.testing.assert_close(out, (2 * x ** 2).sum(dim=1))
    out.sum().backward()
    torch.testing.assert_close(x.grad, 4 * x.detach())
    with torch.no_grad():
        assert not proxy.Remote(caller, "square_sum")(x)[0].requires_grad


def test_modules_by_name_and_by_structure(pair):
    caller, model = pair
    x = torch.randn(2, 3)
    torch.testing.assert_close(proxy.Remote(caller, "apply_model")(model, x), model(x))
    other = nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 1)).double()
    torch.testing.assert_close(proxy.Remote(caller, "apply_model")(other, x.double()), other(x.double()))


def test_nested_call_back_with_gradients(pair):
    caller, _ = pair
    x = torch.randn(5, requires_grad=True)
    y = proxy.Remote(caller, "call_back")(lambda t: t ** 3, x)  # the lambda stays here, called back
    torch.testing.assert_close(y, 3 * x.detach() ** 3)
    y.sum().backward()
    torch.testing.assert_close(x.grad, 9 * x.detach() ** 2)


def test_generators_advance_and_objects_do_not_cross(pair):
    caller, _ = pair
    g, h = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    torch.testing.assert_close(proxy.Remote(caller, "noisy")(g), torch.rand(2, generator=h))
    assert torch.equal(torch.rand(1, generator=g), torch.rand(1, generator=h))
    with pytest.raises(TypeError, match="cannot cross"):
        proxy.Remote(caller, "evil")()
    with pytest.raises(NameError):
        proxy.Remote(caller, "not_served")()


def test_decoding_refuses_what_is_not_data():
    codec = proxy.Codec(None)
    for bad in ({"T": 0, "dtype": "object", "shape": [1]}, {"N": 0, "dtype": "object", "shape": [1]},
                {"dc": "os:system", "fields": {}}, {"dc": "tp_utils.optimize:Result.__init__", "fields": {}},
                {"struct": {"cls": "os.system"}}, {"ref": "model"}, {"pickle": "..."}):
        with pytest.raises(TypeError):
            codec.decode(bad, [b"\0" * 8])
