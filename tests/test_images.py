"""Image loading, conversions of odd formats, preprocess / deprocess (CONTRIBUTING.md section 9)."""
import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

import tp_utils as tp


def test_every_sample_image_loads_as_rgb():
    for name in tp.SAMPLE_IMAGES:
        img = tp.load_image(name)
        assert img.mode == "RGB" and min(img.size) >= 256, name


def test_grayscale_is_replicated():
    img = tp.load_image(Image.fromarray(np.full((40, 50), 77, np.uint8), "L"))
    assert img.mode == "RGB" and img.size == (50, 40)
    assert np.all(np.asarray(img) == 77)


def test_rgba_is_composited_on_white():
    arr = np.zeros((10, 10, 4), np.uint8)
    arr[..., 0] = 255
    arr[:5, :, 3] = 255  # top half opaque red, bottom half transparent
    img = np.asarray(tp.load_image(arr))
    assert (img[:5] == [255, 0, 0]).all() and (img[5:] == 255).all()


def test_palette_image():
    pal = Image.new("P", (8, 8))
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    pal.putpixel((3, 3), 1)
    img = np.asarray(tp.load_image(pal))
    assert tuple(img[3, 3]) == (10, 200, 30) and tuple(img[0, 0]) == (0, 0, 0)


@pytest.mark.parametrize("make", [
    lambda a: Image.fromarray(a),  # PIL mode I;16
    lambda a: a,  # uint16 array
])
def test_16_bit_images_are_rescaled(make):
    arr = np.array([[0, 32768], [65535, 257]], dtype=np.uint16)
    img = np.asarray(tp.load_image(make(arr)))
    assert img.dtype == np.uint8 and img.shape == (2, 2, 3)
    assert img[..., 0].tolist() == [[0, 128], [255, 1]]


def test_float_and_chw_arrays():
    chw = np.random.default_rng(0).random((3, 20, 30))
    img = np.asarray(tp.load_image(chw))
    assert img.shape == (20, 30, 3)
    assert np.abs(img / 255.0 - chw.transpose(1, 2, 0)).max() <= 0.5 / 255 + 1e-9
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        tp.load_image(chw * 255)


def test_not_an_image_file(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a JPEG")
    with pytest.raises(ValueError, match="not an image"):
        tp.load_image(path)


def test_missing_file_or_unknown_sample():
    with pytest.raises(FileNotFoundError, match="chelsea"):
        tp.load_image("chelsee")


def test_preprocess_matches_torchvision_transform():
    img = tp.load_image("rocket")
    ref = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                     T.Normalize(tp.IMAGENET_MEAN, tp.IMAGENET_STD)])(img)[None]
    assert torch.allclose(tp.preprocess(img), ref, atol=1e-6)


def test_preprocess_sizes():
    assert tp.preprocess("chelsea").shape == (1, 3, 224, 224)
    assert tp.preprocess("chelsea", size=128, crop=False).shape == (1, 3, 128, 192)
    assert tp.preprocess(np.zeros((5, 7, 3), np.uint8), size=None).shape == (1, 3, 5, 7)
    with pytest.raises(ValueError, match="too small"):
        tp.preprocess("chelsea", size=8)


def test_deprocess_inverts_preprocess():
    img = tp.load_image("coffee")
    x = tp.preprocess(img)
    assert tp.deprocess(x).shape == (1, 224, 224, 3)
    back = tp.deprocess(x[0])
    assert back.shape == (224, 224, 3)
    assert np.abs(back - np.asarray(tp.resize_crop(img)) / 255.0).max() < 1e-5
    assert tp.deprocess(torch.cat([x, x])).shape == (2, 224, 224, 3)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        tp.deprocess(torch.zeros(1, 1, 8, 8))


def test_clamp_normalized_is_the_pixel_range():
    x = torch.randn(2, 3, 8, 8) * 10
    y = tp.clamp_normalized(x)
    pixels = tp.deprocess(y)
    assert torch.allclose(tp.clamp_normalized(y), y)
    assert pixels.min() >= 0 and pixels.max() <= 1
    mean = torch.tensor(tp.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(tp.IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(y * std + mean, (x * std + mean).clamp(0, 1), atol=1e-6)


def test_too_small_or_wrong_input_for_the_model(model):
    with pytest.raises(ValueError, match="too small"):
        model(torch.zeros(1, 3, 20, 20))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(torch.zeros(1, 4, 224, 224))
    with pytest.raises(ValueError, match="preprocess"):
        model(torch.zeros(3, 224, 224))
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 1000)


def test_preprocess_returns_contiguous_nchw():
    # a channels-last tensor would make student code that calls .view() fail, and runs the
    # network through other kernels than a contiguous copy of the same image (different rounding)
    assert tp.preprocess("chelsea").is_contiguous()
