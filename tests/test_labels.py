import pytest

import tp_utils as tp


def test_names_and_indices_round_trip():
    names = tp.imagenet_classes()
    assert len(names) == 1000 and len(set(names)) == 1000
    for i, name in enumerate(names):
        assert tp.class_index(name) == i
        assert tp.class_name(i) == name


def test_lookup_is_case_insensitive():
    assert tp.class_index("EGYPTIAN cat") == 285
    assert tp.class_index("  egyptian   cat ") == 285
    assert tp.class_index(285) == 285


def test_names_differing_only_by_case():
    assert tp.class_index("Cardigan") == 264 and tp.class_index("cardigan") == 474
    with pytest.raises(KeyError, match="ambiguous"):
        tp.class_index("CARDIGAN")


def test_unknown_name_suggests_close_matches():
    with pytest.raises(KeyError) as err:
        tp.class_index("expresso")
    assert "espresso" in str(err.value)
    with pytest.raises(KeyError, match="not an ImageNet class"):
        tp.class_index("astronaut")


def test_bad_indices():
    with pytest.raises(IndexError, match="0..999"):
        tp.class_name(1000)
    with pytest.raises(IndexError):
        tp.class_index(-1)
    with pytest.raises(TypeError):
        tp.class_name(2.5)
