"""What each `--dataset` value means on the Hub: dataset id, display name, source and licence.

Shared by the card writer (front matter, model-index, licence section) and the leaderboard's Hub sync
(which maps a card's model-index dataset back to the `--dataset` value).
"""

from __future__ import annotations

from dataclasses import dataclass

KERMANY = (
    "Kermany, Zhang & Goldbaum (2018), Labeled Optical Coherence Tomography (OCT) and Chest X-Ray Images "
    "for Classification, Mendeley Data v2, doi:10.17632/rscbjbr9sj.2"
)


@dataclass(frozen=True)
class DatasetInfo:
    hub_type: str  # model-index `dataset.type`: a Hub dataset id where one exists
    name: str
    source: str
    licence: str  # the dataset's terms, in words, for the card body
    model_license: str  # the Hub `license` value for a model trained on it
    hub_id: str | None = None  # front-matter `datasets` entry: only real Hub dataset ids
    config: str | None = None  # model-index `dataset.config`: distinguishes relabelled variants
    terms_url: str | None = None  # where the terms behind a `license: other` are written down
    medical: bool = False  # its models' cards say they are no medical device


DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo(
        hub_type="uoft-cs/cifar10",
        hub_id="uoft-cs/cifar10",
        name="CIFAR-10",
        source="Krizhevsky (2009), https://www.cs.toronto.edu/~kriz/cifar.html",
        licence="research dataset distributed by the University of Toronto without a formal licence",
        model_license="apache-2.0",
    ),
    "tiny-imagenet": DatasetInfo(
        hub_type="zh-plus/tiny-imagenet",
        hub_id="zh-plus/tiny-imagenet",
        name="Tiny ImageNet-200",
        source="Stanford CS231n, http://cs231n.stanford.edu/tiny-imagenet-200.zip (a subset of ImageNet)",
        licence="ImageNet terms of access: non-commercial research and educational use only",
        model_license="other",
        terms_url="https://image-net.org/download.php",
    ),
    "chest-xray": DatasetInfo(
        medical=True,
        hub_type="hf-vision/chest-xray-pneumonia",
        hub_id="hf-vision/chest-xray-pneumonia",
        name="Chest X-Ray Images (Pneumonia)",
        source=KERMANY,
        licence="CC BY 4.0",
        model_license="cc-by-4.0",
    ),
    "chest-xray-3": DatasetInfo(
        medical=True,
        hub_type="hf-vision/chest-xray-pneumonia",
        hub_id="hf-vision/chest-xray-pneumonia",
        config="normal-bacteria-virus",
        name="Chest X-Ray Images (Pneumonia), 3 classes (normal / bacterial / viral)",
        source=KERMANY,
        licence="CC BY 4.0",
        model_license="cc-by-4.0",
    ),
    "fer2013": DatasetInfo(
        hub_type="fer2013",  # no canonical Hub copy, so no `datasets` entry
        name="FER2013",
        source="Goodfellow et al. (2013), ICML Challenges in Representation Learning (Kaggle)",
        licence="research use only (ICML 2013 challenge data, faces collected from web searches)",
        model_license="other",
        terms_url="https://www.kaggle.com/c/challenges-in-representation-learning-facial-expression-recognition-challenge",
    ),
    "folder": DatasetInfo(
        hub_type="imagefolder",
        name="Local image folder",
        source="a local image folder (`root/<split>/<class>/*`) supplied by the user",
        licence="unknown: check the terms of the images used",
        model_license="other",
    ),
}


def dataset_info(dataset: str) -> DatasetInfo:
    """Describe a `--dataset` value; `hf:<id>` maps to that Hub dataset."""
    if dataset.startswith("hf:"):
        hub_id = dataset.removeprefix("hf:")
        return DatasetInfo(
            hub_type=hub_id,
            hub_id=hub_id,
            name=hub_id,
            source=f"https://huggingface.co/datasets/{hub_id}",
            licence=f"see the dataset card of {hub_id}",
            model_license="other",
            terms_url=f"https://huggingface.co/datasets/{hub_id}",
        )
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}: expected one of {', '.join(DATASETS)} or hf:<id>")
    return DATASETS[dataset]


def dataset_key(hub_type: str, config: str | None = None) -> str:
    """Map a model-index dataset (type, config) back to the `--dataset` value that produced it."""
    for key, info in DATASETS.items():
        if info.hub_type == hub_type and info.config == config:
            return key
    return f"hf:{hub_type}"
