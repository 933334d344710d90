"""Notebook 12 (fast style transfer): conditional instance normalization, the perceptual loss of a
batch, the transformer network of tp_utils.transformer_net and the trained network in tp_utils/data/."""
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tp_utils as tp
from tp_utils import transformer_net
from tp_utils.answers import earlier
from tp_utils.notebook import load_exports

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def nb12():
    nb = load_exports(ROOT / "solutions" / "12_fast_style_transfer.ipynb")
    nb.gram_matrix = earlier("gram_matrix", folder=ROOT / "solutions")  # what the notebook's door gives
    nb.tv_loss = earlier("tv_loss", folder=ROOT / "solutions")
    return nb


@pytest.fixture(scope="module")
def trained(nb12):
    return transformer_net.load(transformer_net.TRAINED, nb12.conditional_instance_norm)


def random_maps(*shape, seed=0, scale=3.0, shift=2.0):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=g, dtype=torch.float64) + shift


# ------------------------------------------------------------------ conditional instance norm

@pytest.mark.parametrize("style", [0, 1, 2])
def test_cin_with_one_hot_style_equals_instance_norm(nb12, style):
    x = random_maps(4, 6, 9, 7, seed=style)
    g = torch.Generator().manual_seed(10 + style)
    weight, bias = torch.rand(3, 6, generator=g, dtype=torch.float64) + 0.5, torch.randn(3, 6, generator=g, dtype=torch.float64)
    reference = nn.InstanceNorm2d(6, affine=True, eps=1e-5).double()
    with torch.no_grad():
        reference.weight.copy_(weight[style])
        reference.bias.copy_(bias[style])
        want = reference(x)
    one_hot = F.one_hot(torch.full((4,), style), 3).double()
    got = nb12.conditional_instance_norm(x, one_hot, weight, bias)
    assert got.shape == x.shape
    assert torch.allclose(got, want, atol=1e-10), float((got - want).abs().max())


def test_cin_statistics_per_image_and_channel(nb12):
    x = random_maps(3, 5, 8, 8)
    x[1] *= 10  # an image with other statistics: batch statistics would mix it into the others
    out = nb12.conditional_instance_norm(x, torch.eye(3, dtype=torch.float64), torch.ones(3, 5, dtype=torch.float64),
                                         torch.zeros(3, 5, dtype=torch.float64))
    assert torch.allclose(out.mean(dim=(2, 3)), torch.zeros(3, 5, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(out.var(dim=(2, 3), unbiased=False), torch.ones(3, 5, dtype=torch.float64), atol=1e-4)


def test_cin_mixture_is_the_mixture_of_the_parameters(nb12):
    x = random_maps(2, 4, 6, 6)
    g = torch.Generator().manual_seed(3)
    weight, bias = torch.randn(3, 4, generator=g, dtype=torch.float64), torch.randn(3, 4, generator=g, dtype=torch.float64)
    mix = torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.0, 0.4]], dtype=torch.float64)
    got = nb12.conditional_instance_norm(x, mix, weight, bias)
    # independent: instance norm with each image's mixed (gamma, beta)
    want = torch.cat([F.instance_norm(x[n:n + 1], weight=mix[n] @ weight, bias=mix[n] @ bias, eps=1e-5)
                      for n in range(2)])
    assert torch.allclose(got, want, atol=1e-10)


# ------------------------------------------------------------------ perceptual loss

def test_perceptual_loss_against_a_per_image_float64_computation(nb12):
    loss_net = tp.style.loss_network()
    layers = {"content": {"fire4": 0.7, "fire5": 1.3}, "style": {"relu1": 2.0, "fire2": 3.0, "fire5": 5.0}, "tv": 4.0}
    g = torch.Generator().manual_seed(0)
    outputs = torch.randn(3, 3, 64, 64, generator=g)
    contents = torch.randn(3, 3, 64, 64, generator=g)
    paintings = torch.randn(2, 3, 64, 64, generator=g) * torch.tensor([1.0, 0.5]).view(2, 1, 1, 1)
    style = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.3, 0.7]])
    names = ["fire4", "relu1", "fire2", "fire5"]

    def gram64(f):  # (C, H, W) -> (C, C) / (C H W), independently of notebook 10
        f = f.reshape(f.shape[0], -1).double()
        return f @ f.T / f.numel()

    with tp.models.feature_extractor(loss_net, names) as features:
        with torch.no_grad():
            fo, fc, fp = features(outputs), features(contents), features(paintings)
        grams = {l: torch.stack([gram64(fp[l][k]).float() for k in range(2)]) for l in layers["style"]}
        got = nb12.perceptual_loss(features, outputs, contents, grams, style, layers)
    want = {"content": 0.0, "style": 0.0, "tv": 0.0}
    for n in range(3):
        for l, w in layers["content"].items():
            p = fc[l][n].double()
            want["content"] += w * (fo[l][n].double() - p).pow(2).sum() / p.pow(2).sum()
        for l, w in layers["style"].items():
            target = style[n, 0] * gram64(fp[l][0]) + style[n, 1] * gram64(fp[l][1])
            want["style"] += w * (gram64(fo[l][n]) - target).pow(2).sum() / target.pow(2).sum()
        o = outputs[n].double()
        want["tv"] += layers["tv"] * ((o[:, 1:] - o[:, :-1]).pow(2).sum()
                                      + (o[:, :, 1:] - o[:, :, :-1]).pow(2).sum()) / o.numel()
    want = {k: float(v) / 3 for k, v in want.items()}
    for key in want:
        assert float(got[key]) == pytest.approx(want[key], rel=1e-4), key
    assert float(got["total"]) == pytest.approx(sum(want.values()), rel=1e-4)


def test_perceptual_loss_gradient_reaches_the_outputs_only(nb12):
    feats = lambda x: {"a": x, "b": F.avg_pool2d(x, 2)}
    outputs = torch.randn(2, 3, 8, 8, requires_grad=True)
    contents = torch.randn(2, 3, 8, 8, requires_grad=True)
    grams = {"a": torch.rand(2, 3, 3), "b": torch.rand(2, 3, 3)}
    loss = nb12.perceptual_loss(feats, outputs, contents, grams, torch.eye(2),
                                {"content": {"b": 1.0}, "style": {"a": 1.0, "b": 1.0}, "tv": 0.1})
    loss["total"].backward()
    assert outputs.grad is not None and outputs.grad.abs().sum() > 0
    assert contents.grad is None or contents.grad.abs().sum() == 0, "the content targets are constants"


# ------------------------------------------------------------------ the network

@pytest.mark.parametrize("upsample", ["nearest", "transposed"])
@pytest.mark.parametrize("size", [(64, 64), (48, 80), (66, 70)])
def test_network_shapes(nb12, upsample, size):
    net = transformer_net.TransformerNet(nb12.conditional_instance_norm, n_styles=3, channels=4, n_residual=1,
                                         upsample=upsample)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        y = net(x, torch.tensor([0, 2]))
    assert y.shape == (2, 3, size[0] // 4 * 4, size[1] // 4 * 4)
    lo = (0 - torch.tensor(tp.IMAGENET_MEAN)) / torch.tensor(tp.IMAGENET_STD)
    hi = (1 - torch.tensor(tp.IMAGENET_MEAN)) / torch.tensor(tp.IMAGENET_STD)
    assert (y >= lo.view(1, 3, 1, 1) - 1e-5).all() and (y <= hi.view(1, 3, 1, 1) + 1e-5).all()


def test_style_weights_forms():
    assert torch.equal(transformer_net.style_weights(1, 2, 3), torch.tensor([[0.0, 1, 0], [0, 1, 0]]))
    assert torch.equal(transformer_net.style_weights(torch.tensor([2, 0]), 2, 3), torch.tensor([[0.0, 0, 1], [1, 0, 0]]))
    assert torch.equal(transformer_net.style_weights([0.5, 0.5, 0], 2, 3), torch.tensor([[0.5, 0.5, 0]] * 2))
    for bad in (3, -1, [1.0, 0.0], torch.tensor([0, 5])):
        with pytest.raises(ValueError):
            transformer_net.style_weights(bad, 2, 3)


def test_norm_function_required():
    with pytest.raises(TypeError, match="normalization"):
        transformer_net.TransformerNet(None)


def test_crop_sampler_is_reproducible_and_deals_the_styles():
    photos = torch.randn(5, 3, 40, 40)
    a = transformer_net.CropSampler(photos, size=32, batch=6, generator=torch.Generator().manual_seed(1))
    b = transformer_net.CropSampler(photos, size=32, batch=6, generator=torch.Generator().manual_seed(1))
    (xa, sa), (xb, sb) = a(0), b(0)
    assert xa.shape == (6, 3, 32, 32) and torch.equal(xa, xb) and torch.equal(sa, sb)
    assert torch.bincount(sa, minlength=3).tolist() == [2, 2, 2]
    assert not torch.equal(a(1)[0], xa)


def test_train_lowers_a_simple_loss(nb12):
    torch.manual_seed(0)
    net = transformer_net.TransformerNet(nb12.conditional_instance_norm, channels=4, n_residual=1)
    photos = torch.randn(4, 3, 40, 40)
    sampler = transformer_net.CropSampler(photos, size=32, batch=3, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([0.5, -0.5, 0.0]).view(1, 3, 1, 1)  # every style: paint the image one colour
    history = transformer_net.train(net, lambda y, x, s: {"total": (y - target).pow(2).mean()}, sampler, 30, lr=1e-2)
    assert len(history) == 30 and history[-1]["total"] < 0.5 * history[0]["total"]


# --------------------------------------------------------- the trained network in tp_utils/data/

def test_trained_network_is_small_and_loads_with_weights_only(trained):
    net, record = trained
    path = transformer_net.TRAINED
    assert path.stat().st_size == record["bytes"] < 3_000_000
    assert transformer_net.n_parameters(net) == record["parameters"]
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert set(state) == set(net.state_dict())
    assert record["styles"] == list(tp.PAINTINGS)


def test_trained_network_output_equals_the_stored_value(trained):
    net, record = trained
    check = record["check"]
    x = tp.preprocess("chelsea", size=64)
    with torch.no_grad():
        for s in range(len(record["styles"])):
            y = net(x, s)[0].double()
            assert torch.allclose(y.mean(dim=(1, 2)), torch.tensor(check["mean"][s], dtype=torch.float64), atol=1e-4)
            assert torch.allclose(y.std(dim=(1, 2)), torch.tensor(check["std"][s], dtype=torch.float64), atol=1e-4)
            pooled = F.adaptive_avg_pool2d(y, 4).flatten()
            assert torch.allclose(pooled, torch.tensor(check["pooled"][s], dtype=torch.float64), atol=1e-4)


def test_trained_network_styles_differ_and_interpolation_ends_are_pure(trained):
    net, _ = trained
    x = tp.preprocess("tubingen", size=96)
    with torch.no_grad():
        pure = [net(x, s) for s in range(3)]
        for s in range(3):
            assert torch.equal(net(x, F.one_hot(torch.tensor(s), 3).float()), pure[s])
            for t in (0.0, 1.0):  # the two ends of an interpolation between s and the next style
                w = torch.zeros(3)
                w[s], w[(s + 1) % 3] = 1 - t, t
                assert torch.allclose(net(x, w), pure[s] if t == 0 else pure[(s + 1) % 3], atol=1e-6)
        mid = net(x, torch.tensor([0.5, 0.5, 0.0]))
    for a in range(3):
        for b in range(a + 1, 3):
            assert (pure[a] - pure[b]).abs().mean() > 0.1, (a, b)
    assert (mid - pure[0]).abs().mean() > 0.05 and (mid - pure[1]).abs().mean() > 0.05


def test_record_states_how_it_was_trained(trained):
    _, record = trained
    training = record["training"]
    assert training["command"].startswith("python scripts/train_fast_style.py")
    assert training["seconds"] > 0 and training["steps"] > 0
    assert not any(name in " ".join(training["held out"]) for name in tp.CONTENT_PHOTOS)
    final = training["final losses (mean of the last 100 steps)"]
    assert final["total"] < 0.5 * training["first losses"]["total"]


def test_training_script_runs_and_writes_a_loadable_network(tmp_path, nb12):
    """scripts/train_fast_style.py end to end, tiny: photos exported as JPEG and read back, a few
    steps, the state dict and its record; the record's check values are the saved network's."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("train_fast_style", ROOT / "scripts" / "train_fast_style.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    photos = tmp_path / "photos"
    assert script.main(["--export-photos", str(photos), "--photo-size", "48"]) == 0
    manifest = json.loads((photos / "photos.json").read_text())
    assert len(list(photos.glob("*.jpg"))) == len(manifest["names"]) == 186 and len(manifest["held out"]) == 20
    with pytest.raises(SystemExit, match="48 px"):
        script.exported_photos(photos, 64)
    back, _, _ = script.exported_photos(photos, 48)
    direct, _, _ = script.training_photos(48)
    grey_levels = float((torch.from_numpy(tp.deprocess(back) - tp.deprocess(direct))).abs().mean()) * 255
    assert grey_levels < 5, grey_levels  # JPEG q95: the photos themselves, up to a few grey levels

    out = tmp_path / "net.pt"
    args = ["--photos", str(photos), "--photo-size", "48", "--size", "32", "--batch", "3", "--steps", "3",
            "--channels", "4", "--residual", "1", "--device", "cpu", "--out", str(out)]
    assert script.main(args) == 0
    net, record = transformer_net.load(out, nb12.conditional_instance_norm)
    assert record["config"]["channels"] == 4 and record["training"]["steps"] == 3
    assert "--export-photos" in record["training"]["photos folder"]
    assert record["check"] == script.check_values(net, 3)
