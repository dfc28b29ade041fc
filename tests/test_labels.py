"""The one rule for the name a person reads for a class (`runfolder.display_labels`), on new and old run folders."""

from __future__ import annotations

from pathlib import Path

from runfolder import LABEL_IDS, config_labels, display_labels, read_config

TINY_IMAGENET_RUN = Path(__file__).resolve().parents[1] / "reference" / "tiny-imagenet-efficientnet_lite0"


def test_names_are_shown_as_they_are():
    assert display_labels(["cat", "dog"]) == ["cat", "dog"]
    assert display_labels(["go-kart"], {"n03444034": "go-kart"}) == ["go-kart"], "descriptions keyed by id: unused"


def test_ids_with_descriptions_read_as_their_first_synonym():
    descriptions = {"n03444034": "go-kart", "n01443537": "goldfish, Carassius auratus"}
    assert display_labels(["n01443537", "n03444034", "n99999999"], descriptions) == [
        "goldfish", "go-kart", "n99999999"]


def test_a_shared_first_synonym_keeps_each_class_distinguishable():
    descriptions = {"n02012849": "crane", "n03126707": "crane, derrick"}
    assert display_labels(["n02012849", "n03126707"], descriptions) == ["crane (n02012849)", "crane (n03126707)"]


def test_the_shipped_tiny_imagenet_run_reads_as_names():
    """Whether its config.json holds WordNet ids with glosses (older runs) or names, the page shows names."""
    names = config_labels(read_config(TINY_IMAGENET_RUN))
    assert names[0] == "goldfish" and len(set(names)) == len(names) == 200
    assert not any(name.startswith("n0") and name[1:].isdigit() for name in names)


def test_names_a_run_made_distinct_are_shown_as_written():
    """A run with `label_ids` named its classes itself, two cranes told apart included: their descriptions, whose
    first synonyms are both "crane", must not rename them."""
    config = {"label_names": ["crane (bird)", "crane (machine)"], LABEL_IDS: ["n02012849", "n03126707"],
              "label_descriptions": {"crane (bird)": "crane", "crane (machine)": "crane, derrick"}}
    assert config_labels(config) == ["crane (bird)", "crane (machine)"]
