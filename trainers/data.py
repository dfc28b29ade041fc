"""Dataset readers for the formats in docs/DESIGN.md ("Datasets on disk"), stratified splits, and the torch Dataset.

`load_dataset(name, data_dir)` returns a `DatasetSplits`: class names plus lists of `Sample`s per split.
Samples are references (a path, or an in-memory uint8 array for pickled/csv formats); decoding happens
in `ImageDataset` through the shared inference path.
"""

from __future__ import annotations

import csv
import pickle
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from trainers.inference import ImageError, images_in, is_litter, load_image

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FER_CLASSES = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
FER_CSV_ORDER = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]  # fer2013.csv's emotion ids
VAL_NAMES = ("val", "valid", "validation")


class DataError(ValueError):
    """A dataset that cannot be read as asked, with the path or value at fault."""


@dataclass(frozen=True)
class Sample:
    source: str | np.ndarray  # file path, or pixels for array-backed formats
    label: int
    sample_id: str  # stable id for predictions.parquet: the path relative to --data-dir, or "<file>#<index>"


@dataclass
class DatasetSplits:
    name: str
    classes: list[str]
    train: list[Sample]
    val: list[Sample] = field(default_factory=list)
    test: list[Sample] = field(default_factory=list)
    descriptions: dict[str, str] | None = None  # class name -> longer description (Tiny ImageNet's words.txt)
    class_ids: list[str] | None = None  # dataset ids of `classes`, in order, where they differ (WordNet ids)
    notes: list[str] = field(default_factory=list)

    @property
    def eval_split(self) -> str:
        return "test" if self.test else "val"

    def counts(self, split: str) -> list[int]:
        tally = Counter(s.label for s in getattr(self, split))
        return [tally.get(i, 0) for i in range(len(self.classes))]


def load_dataset(name: str, data_dir: str | Path | None) -> DatasetSplits:
    """Read `name` (a DATASETS value or `hf:<id>`) from `data_dir`."""
    if name.startswith("hf:"):
        return _read_hf(name[3:])
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)} or hf:<hub-dataset-id>")
    if data_dir is None:
        raise DataError(f"--dataset {name} needs --data-dir PATH")
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"data directory not found: {root}")
    splits = READERS[name](root)
    splits.name = name
    _check_classes(splits, root)
    _ids_relative_to(root, splits)
    return splits


def _ids_relative_to(root: Path, splits: DatasetSplits) -> None:
    """File sample ids relative to the data dir the user gave: predictions.parquet then holds no machine path, and
    the images are found again under any copy of the dataset (the dashboard's gallery, reference/pack_run.py)."""
    for split in ("train", "val", "test"):
        setattr(splits, split, [
            replace(s, sample_id=Path(s.sample_id).relative_to(root).as_posix()) if isinstance(s.source, str) else s
            for s in getattr(splits, split)
        ])


def _check_classes(splits: DatasetSplits, root: Path) -> None:
    if not splits.train:
        raise DataError(f"no training images found under {root}")
    empty = [c for c, n in zip(splits.classes, splits.counts("train"), strict=True) if n == 0]
    if empty:
        raise DataError(f"classes with no training images under {root}: {', '.join(empty)}")
    if len(splits.classes) < 2:
        raise DataError(f"{root}: found {len(splits.classes)} class ({', '.join(splits.classes)}); a classifier "
                        "needs at least 2 class folders")


# ---------------------------------------------------------------------------------------------- readers


def _class_folders(split_dir: Path, classes: list[str] | None = None) -> tuple[list[str], list[Sample]]:
    """`split_dir/<class>/**/*.jpg` -> (class names, samples). Class order: `classes` or sorted names."""
    found = sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not is_litter(d.name))
    if not found:
        raise DataError(f"expected one folder per class in {split_dir}, found none")
    classes = classes or found
    unknown = set(found) - set(classes)
    if unknown:
        raise DataError(f"{split_dir}: unexpected class folders {sorted(unknown)}; known classes: {classes}")
    samples = [
        Sample(str(p), index, str(p)) for index, c in enumerate(classes) if (split_dir / c).is_dir()
        for p in images_in(split_dir / c)
    ]
    return classes, samples


def _find(root: Path, marker: str) -> Path | None:
    """`root` itself or its child/grandchild that contains `marker` (users point at either level)."""
    for candidate in (root, *sorted(root.iterdir()), *sorted(root.glob("*/*"))):
        if candidate.is_dir() and (candidate / marker).exists():
            return candidate
    return None


def _read_folder(root: Path, classes: list[str] | None = None) -> DatasetSplits:
    if not (root / "train").is_dir():
        raise DataError(
            f"{root}: expected the layout root/train/<class>/*.jpg (plus optional val/ and test/); "
            f"found {sorted(p.name for p in root.iterdir())[:10]}"
        )
    classes, train = _class_folders(root / "train", classes)
    splits = DatasetSplits("folder", classes, train)
    for split in ("val", "test"):
        for dirname in VAL_NAMES if split == "val" else ("test",):
            if (root / dirname).is_dir():
                setattr(splits, split, _class_folders(root / dirname, classes)[1])
                break
    return splits


def _read_cifar10(root: Path) -> DatasetSplits:
    pickles = _find(root, "data_batch_1")
    if pickles is None:
        folder = _find(root, "train")
        if folder is None:
            raise DataError(f"{root}: no cifar-10-batches-py/ pickles and no train/<class>/ image folder")
        return _read_folder(folder, CIFAR10_CLASSES)
    meta = _unpickle(pickles / "batches.meta") if (pickles / "batches.meta").exists() else {}
    classes = [n.decode() for n in meta.get(b"label_names", [])] or CIFAR10_CLASSES
    train = [s for i in range(1, 6) if (pickles / f"data_batch_{i}").exists()
             for s in _cifar_samples(pickles / f"data_batch_{i}")]
    test = _cifar_samples(pickles / "test_batch") if (pickles / "test_batch").exists() else []
    return DatasetSplits("cifar10", classes, train, test=test)


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="bytes")
    except Exception as err:
        raise DataError(f"{path}: not a CIFAR-10 pickle batch ({err})") from err


def _cifar_samples(path: Path) -> list[Sample]:
    batch = _unpickle(path)
    pixels = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return [Sample(pixels[i], int(y), f"{path.name}#{i}") for i, y in enumerate(batch[b"labels"])]


def _read_tiny_imagenet(root: Path) -> DatasetSplits:
    base = _find(root, "wnids.txt")
    if base is None:
        raise DataError(f"{root}: no tiny-imagenet-200/wnids.txt found")
    wnids = sorted(base.joinpath("wnids.txt").read_text().split())
    words = _wordnet_words(base / "words.txt", set(wnids))
    index = {w: i for i, w in enumerate(wnids)}
    train = [Sample(str(p), index[w], str(p)) for w in wnids for p in images_in(base / "train" / w)]
    val = []
    annotations = base / "val" / "val_annotations.txt"
    if annotations.exists():
        for line in annotations.read_text().splitlines():
            file, wnid, *_ = line.split("\t")
            val.append(Sample(str(base / "val" / "images" / file), index[wnid], str(base / "val" / "images" / file)))
    if not words:  # no words.txt: the WordNet ids are the only names there are
        return DatasetSplits("tiny-imagenet", wnids, train, val=val)
    names = class_names(wnids, words)
    return DatasetSplits("tiny-imagenet", names, train, val=val, class_ids=wnids,
                         descriptions={name: words.get(w, w) for name, w in zip(names, wnids, strict=True)})


def _wordnet_words(path: Path, wnids: set[str]) -> dict[str, str]:
    """words.txt (`<wnid>\\t<synonym>, <synonym>, ...`) for the given ids; {} when the file is absent."""
    if not path.exists():
        return {}
    lines = (line.partition("\t") for line in path.read_text().splitlines())
    return {wnid: words.strip() for wnid, _, words in lines if wnid in wnids}


def class_names(ids: list[str], words: dict[str, str]) -> list[str]:
    """A short human name per class: the first synonym of its words.txt entry. Where classes share a first synonym
    (ImageNet has two "crane"s, a bird and a machine), each gets its second synonym in brackets; where that still
    repeats, its id."""
    synonyms = {i: [w.strip() for w in words.get(i, "").split(",") if w.strip()] or [i] for i in ids}
    names = [synonyms[i][0] for i in ids]
    for qualifier in (lambda i: synonyms[i][1] if len(synonyms[i]) > 1 else i, lambda i: i):
        repeated = {name for name, count in Counter(names).items() if count > 1}
        names = [f"{synonyms[i][0]} ({qualifier(i)})" if name in repeated else name
                 for i, name in zip(ids, names, strict=True)]
    return names


def _read_chest_xray(root: Path, three_class: bool) -> DatasetSplits:
    base = _find(root, "train")
    if base is None or not (base / "train" / "NORMAL").is_dir():
        raise DataError(f"{root}: expected chest_xray/train/NORMAL and chest_xray/train/PNEUMONIA")
    classes = ["NORMAL", "BACTERIA", "VIRUS"] if three_class else ["NORMAL", "PNEUMONIA"]

    def read(split: str) -> list[Sample]:
        _, samples = _class_folders(base / split, ["NORMAL", "PNEUMONIA"])
        return [Sample(s.source, _xray_label(s, three_class), s.sample_id) for s in samples]

    # The official val/ holds 16 images: too few to select on, so it joins train and a stratified
    # validation split is carved later (see make_val_split).
    train = read("train") + (read("val") if (base / "val").is_dir() else [])
    test = read("test") if (base / "test").is_dir() else []
    return DatasetSplits("chest-xray-3" if three_class else "chest-xray", classes, train, test=test)


def _xray_label(sample: Sample, three_class: bool) -> int:
    if sample.label == 0 or not three_class:
        return sample.label
    name = Path(sample.source).name.lower()
    if "bacteria" in name:
        return 1
    if "virus" in name:
        return 2
    raise DataError(f"{sample.source}: pneumonia image without 'bacteria' or 'virus' in its name")


def _read_fer2013(root: Path) -> DatasetSplits:
    csv_path = next(iter(sorted(root.rglob("fer2013.csv"))), None) if root.is_dir() else None
    if csv_path is not None:
        return _read_fer_csv(csv_path)
    base = _find(root, "train")
    if base is None:
        raise DataError(f"{root}: no fer2013.csv and no train/<emotion>/ image folders")
    splits = DatasetSplits("fer2013", FER_CLASSES, _class_folders(base / "train", FER_CLASSES)[1])
    # Image-folder form: test/ mixes PublicTest_ (validation) and PrivateTest_ (test) files; the
    # publictest/ and privatetest/ folders hold them separately.
    for folder in ("test", "publictest", "privatetest"):
        if (base / folder).is_dir():
            for s in _class_folders(base / folder, FER_CLASSES)[1]:
                private = Path(s.source).name.startswith("PrivateTest") or folder == "privatetest"
                (splits.test if private else splits.val).append(s)
    return splits


def _read_fer_csv(path: Path) -> DatasetSplits:
    splits = DatasetSplits("fer2013", FER_CLASSES, [])
    target = {"Training": splits.train, "PublicTest": splits.val, "PrivateTest": splits.test}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not {"emotion", "pixels", "Usage"} <= set(reader.fieldnames or []):
            raise DataError(f"{path}: expected columns emotion,pixels,Usage; found {reader.fieldnames}")
        for row_number, row in enumerate(reader, start=2):
            pixels = np.array(row["pixels"].split(), dtype=np.uint8)
            if pixels.size != 48 * 48:
                raise DataError(f"{path}:{row_number}: expected 2304 pixels, found {pixels.size}")
            label = FER_CLASSES.index(FER_CSV_ORDER[int(row["emotion"])])
            target[row["Usage"]].append(Sample(pixels.reshape(48, 48), label, f"{path.name}#{row_number}"))
    return splits


# The --dataset choices (besides hf:<id>) and the reader of each one's on-disk layout.
READERS: dict[str, Callable[[Path], DatasetSplits]] = {
    "cifar10": _read_cifar10,
    "tiny-imagenet": _read_tiny_imagenet,
    "chest-xray": partial(_read_chest_xray, three_class=False),
    "chest-xray-3": partial(_read_chest_xray, three_class=True),
    "fer2013": _read_fer2013,
    "folder": _read_folder,
}
DATASETS = tuple(READERS)
# `--val-groups subject`: the datasets whose file names say whose image it is, and the regex that reads it. The
# Kermany X-rays name their patient: person1_bacteria_1.jpeg, IM-0115-0001.jpeg, NORMAL2-IM-0123-0001.jpeg.
BY_SUBJECT = "subject"
_KERMANY_PATIENT = r"^(person\d+|IM-\d+|NORMAL2-IM-\d+)"
SUBJECT_PATTERNS = {"chest-xray": _KERMANY_PATIENT, "chest-xray-3": _KERMANY_PATIENT}


def _read_hf(dataset_id: str) -> DatasetSplits:
    """Any Hub dataset with an image column and a ClassLabel column."""
    import datasets

    try:
        dsd = datasets.load_dataset(dataset_id)
    except Exception as err:
        raise DataError(
            f"cannot load Hub dataset {dataset_id!r} ({type(err).__name__}: {str(err).splitlines()[0]}); "
            "offline, use --dataset folder with a local copy"
        ) from err
    first = dsd[next(iter(dsd))]
    image_col = next((c for c, f in first.features.items() if isinstance(f, datasets.Image)), None)
    label_col = next((c for c, f in first.features.items() if isinstance(f, datasets.ClassLabel)), None)
    if image_col is None or label_col is None:
        raise DataError(f"{dataset_id}: needs an Image column and a ClassLabel column; has {dict(first.features)}")
    classes = first.features[label_col].names

    def samples(split: str) -> list[Sample]:
        ds = dsd[split]
        return [Sample(np.asarray(row[image_col]), int(row[label_col]), f"{split}#{i}") for i, row in enumerate(ds)]

    names = set(dsd)
    val = next((n for n in VAL_NAMES if n in names), None)
    return DatasetSplits(f"hf:{dataset_id}", classes, samples("train"),
                         val=samples(val) if val else [], test=samples("test") if "test" in names else [])


# ------------------------------------------------------------------------------------------------ splits


@dataclass(frozen=True)
class Carve:
    """How a validation split is carved from train when the dataset has none (--val-split, --balanced-val,
    --val-groups and the carve seed)."""

    fraction: float = 0.1
    balanced: bool = False  # the same number of images from every class (the rarest class sets it)
    seed: int = 0
    groups: str | None = None  # a regex on file names; its first group (else its match) names an image's subject


def subject_regex(dataset: str, val_groups: str | None) -> str | None:
    """--val-groups as a regex: `subject` is the dataset's own (SUBJECT_PATTERNS)."""
    if val_groups != BY_SUBJECT:
        return val_groups
    if dataset not in SUBJECT_PATTERNS:
        raise DataError(f"--val-groups {BY_SUBJECT}: the file names of --dataset {dataset} name no subject known here "
                        f"(known for {', '.join(SUBJECT_PATTERNS)}); give a regex whose first group names it")
    return SUBJECT_PATTERNS[dataset]


def make_val_split(splits: DatasetSplits, carve: Carve) -> None:
    """Carve a stratified validation split from train when the dataset has none.

    `carve.balanced`, as the chest X-ray report did, so validation accuracy is not dominated by the majority class.
    `carve.groups` keeps each subject's images (a patient's X-rays, a person's faces) on one side, so validation
    does not score the network on subjects it trained on.
    """
    if splits.val:
        return
    if not 0 < carve.fraction < 1:
        raise DataError(f"--val-split must be between 0 and 1, got {carve.fraction}")
    by_class = _by_class(splits.train, carve.seed)
    quota = {c: max(1, round(len(items) * carve.fraction)) for c, items in by_class.items()}
    if carve.balanced:
        quota = dict.fromkeys(quota, min(quota.values()))
    for c, items in by_class.items():
        if len(items) - quota[c] < 1:
            raise DataError(f"class {splits.classes[c]!r} has {len(items)} images: too few to split off validation")
    kind = "balanced" if carve.balanced else "stratified"
    if carve.groups:
        val_ids = _grouped_val_ids(splits, quota, carve)
        kind += f", grouped by --val-groups {carve.groups!r}"
    else:
        val_ids = {s.sample_id for c, items in by_class.items() for s in items[: quota[c]]}
    splits.val = [s for items in by_class.values() for s in items if s.sample_id in val_ids]
    splits.train = [s for items in by_class.values() for s in items if s.sample_id not in val_ids]
    splits.notes.append(f"validation: {len(splits.val)} images carved from train ({kind})")


def _grouped_val_ids(splits: DatasetSplits, quota: dict[int, int], carve: Carve) -> set[str]:
    """Whole subjects, in seeded random order, each taken while it fits every class's quota. Hand-written: sklearn's
    StratifiedGroupKFold cuts folds of one fraction and has no per-class quotas (--balanced-val)."""
    pattern = re.compile(carve.groups)
    subjects: dict[str, list[Sample]] = defaultdict(list)
    matched = False
    for sample in splits.train:
        name = Path(sample.sample_id).name
        match = pattern.search(name)
        matched |= match is not None
        subject = match and (match.group(1) if match.groups() else match.group(0))
        subjects[subject or name].append(sample)  # unmatched, or its group unmatched (`(x)?y`): alone
    if not matched:
        raise DataError(f"--val-groups {carve.groups!r} matches none of the file names (e.g. "
                        f"{Path(splits.train[0].sample_id).name!r})")
    keys = sorted(subjects)
    random.Random(carve.seed).shuffle(keys)
    taken: Counter[int] = Counter()
    val_ids: set[str] = set()
    for key in keys:
        need = Counter(s.label for s in subjects[key])
        if all(taken[c] + n <= quota[c] for c, n in need.items()):
            taken += need
            val_ids |= {s.sample_id for s in subjects[key]}
    if empty := [splits.classes[c] for c in quota if not taken[c]]:
        largest = max(len(images) for images in subjects.values())
        raise DataError(f"--val-groups {carve.groups!r}: no subject of {empty} fits the validation quota (the "
                        f"largest subject has {largest} images): does the first group name one subject? Else carve "
                        "a larger --val-split")
    return val_ids


def subsample(samples: list[Sample], limit: int | None, seed: int) -> list[Sample]:
    """`limit` samples, stratified: each class its share of `limit`, rounded by largest remainder (so the counts add
    up to `limit` exactly), its samples drawn at random with `seed`."""
    if limit is None or len(samples) <= limit:
        return samples
    by_class = _by_class(samples, seed)
    shares = {label: limit * len(items) / len(samples) for label, items in by_class.items()}
    quota = {label: int(share) for label, share in shares.items()}
    for label in sorted(shares, key=lambda label: quota[label] - shares[label])[:limit - sum(quota.values())]:
        quota[label] += 1
    return [s for label, items in by_class.items() for s in items[:quota[label]]]


def _by_class(samples: list[Sample], seed: int) -> dict[int, list[Sample]]:
    rng = random.Random(seed)
    groups: dict[int, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[s.label].append(s)
    for items in groups.values():
        rng.shuffle(items)
    return dict(sorted(groups.items()))


def class_weights(counts: list[int]) -> torch.Tensor:
    """Inverse-frequency weights normalised to mean 1 (sklearn's 'balanced' heuristic)."""
    counts_t = torch.tensor(counts, dtype=torch.float32).clamp(min=1)
    return counts_t.sum() / (len(counts) * counts_t)


# ------------------------------------------------------------------------------------------ torch dataset


class ImageDataset(Dataset):
    """Decodes samples through the shared inference path; returns (image, label, index).

    An unreadable image raises an error naming its path, or, with `skip_corrupt`, is reported once and
    replaced by `None` (dropped by `collate_skip_none`).
    """

    def __init__(self, samples: list[Sample], transform: Callable, mode: str = "RGB", skip_corrupt: bool = False,
                 min_side: int | None = None):
        self.samples, self.transform, self.mode, self.skip_corrupt = samples, transform, mode, skip_corrupt
        self.min_side = min_side  # see load_image: for transforms that resize to a known side first

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        sample = self.samples[index]
        try:
            image = load_image(sample.source, self.mode, self.min_side)
        except ImageError as err:
            if not self.skip_corrupt:
                raise ImageError(f"corrupt or unreadable image: {err} (use --skip-corrupt to skip such files)") from err
            print(f"skipping unreadable image: {err}", flush=True)
            return None
        return self.transform(image), sample.label, index


def collate_skip_none(batch: list) -> list[torch.Tensor] | None:
    batch = [b for b in batch if b is not None]
    if not batch:
        return None
    return torch.utils.data.default_collate(batch)
