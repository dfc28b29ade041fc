"""Every dataset format of docs/DESIGN.md, read from real images (../shared/data) or files built in the real format."""

from __future__ import annotations

import csv
import pickle
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import SAMPLE
from PIL import Image

from trainers import data as D
from trainers.config import ConfigError, parse_config


def test_folder_sample_shipped_in_repo():
    splits = D.load_dataset("cifar10", SAMPLE)
    assert splits.classes == D.CIFAR10_CLASSES
    assert splits.counts("train") == [80] * 10 and splits.counts("val") == [20] * 10
    assert splits.eval_split == "val"


def write_cifar_pickles(root: Path, images_per_class: int = 6) -> Path:
    """CIFAR-10's python format (data_batch_N, test_batch, batches.meta) built from the sample JPEGs."""
    out = root / "cifar-10-batches-py"
    out.mkdir(parents=True)
    rows, labels = [], []
    for label, name in enumerate(D.CIFAR10_CLASSES):
        for path in sorted((SAMPLE / "train" / name).glob("*.jpg"))[:images_per_class]:
            rows.append(np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1).reshape(-1))
            labels.append(label)
    data = np.stack(rows)
    for file, part in (("data_batch_1", slice(0, None, 2)), ("test_batch", slice(1, None, 2))):
        with open(out / file, "wb") as f:
            pickle.dump({b"data": data[part], b"labels": labels[part]}, f)
    with open(out / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in D.CIFAR10_CLASSES]}, f)
    return root


def test_cifar10_pickles(tmp_path):
    splits = D.load_dataset("cifar10", write_cifar_pickles(tmp_path))
    assert splits.classes == D.CIFAR10_CLASSES
    assert len(splits.train) == 30 and len(splits.test) == 30
    first = splits.train[0]
    assert first.source.shape == (32, 32, 3) and first.sample_id == "data_batch_1#0"
    original = np.asarray(Image.open(sorted((SAMPLE / "train" / "airplane").glob("*.jpg"))[0]).convert("RGB"))
    assert np.array_equal(first.source, original)


def test_cifar10_image_folder(shared_data):
    splits = D.load_dataset("cifar10", shared_data("cifar10-train.tar.gz"))
    assert splits.counts("train") == [5000] * 10
    assert not splits.val and not splits.test


def test_tiny_imagenet(shared_data, tmp_path):
    root = shared_data("tiny-imagenet-200-train100.tar.gz") / "tiny-imagenet-200"
    splits = D.load_dataset("tiny-imagenet", root.parent)
    assert len(splits.classes) == len(set(splits.classes)) == 200
    assert splits.classes[:2] == ["goldfish", "European fire salamander"]  # words.txt's first synonym
    assert splits.class_ids[:2] == ["n01443537", "n01629819"]  # the WordNet ids stay, in the same order
    assert splits.descriptions["goldfish"] == "goldfish, Carassius auratus"
    assert splits.counts("train") == [100] * 200
    first = splits.train[0]  # relative to the directory given, which here is the archive's top
    assert first.sample_id == "tiny-imagenet-200/train/n01443537/images/n01443537_0.JPEG"
    assert (root.parent / first.sample_id).samefile(first.source)
    # The official val/ layout: images/ plus val_annotations.txt
    copy = tmp_path / "tiny-imagenet-200"
    (copy / "train").mkdir(parents=True)
    for name in ("wnids.txt", "words.txt"):
        shutil.copy(root / name, copy / name)
    for wnid in splits.class_ids:
        (copy / "train" / wnid / "images").mkdir(parents=True)
    shutil.copy(root / "train/n01443537/images/n01443537_0.JPEG", copy / "train/n01443537/images/a.JPEG")
    (copy / "val/images").mkdir(parents=True)
    shutil.copy(root / "train/n01629819/images/n01629819_0.JPEG", copy / "val/images/val_0.JPEG")
    (copy / "val/val_annotations.txt").write_text("val_0.JPEG\tn01629819\t0\t0\t63\t63\n")
    with pytest.raises(D.DataError, match="classes with no training images"):
        D.load_dataset("tiny-imagenet", copy)


def test_class_names_are_unique_where_synonyms_repeat():
    """ImageNet-1k has two "crane"s (n02012849 the bird, n03126707 the machine) and two "maillot"s whose second
    synonyms also match (n03710637 "maillot", n03710721 "maillot, tank suit"); a class without words keeps its id."""
    words = {"n02012849": "crane", "n03126707": "crane, derrick", "n01443537": "goldfish, Carassius auratus",
             "n03710637": "maillot, tank suit", "n03710721": "maillot, tank suit"}
    ids = [*words, "n09999999"]
    assert D.class_names(ids, words) == ["crane (n02012849)", "crane (derrick)", "goldfish",
                                         "maillot (n03710637)", "maillot (n03710721)", "n09999999"]


def test_sample_ids_are_relative_to_the_data_dir_given():
    """predictions.parquet stores these: no machine path, and any copy of the dataset finds the images again."""
    splits = D.load_dataset("cifar10", SAMPLE)
    assert splits.train[0].sample_id == "train/airplane/" + Path(splits.train[0].source).name
    assert all((SAMPLE / s.sample_id).samefile(s.source) for s in splits.train + splits.val)


def test_chest_xray_two_and_three_classes(shared_data):
    root = shared_data("chest_xray-train.tar.gz")
    two = D.load_dataset("chest-xray", root)
    assert two.classes == ["NORMAL", "PNEUMONIA"] and two.counts("train") == [1341, 3875]
    three = D.load_dataset("chest-xray-3", root)
    assert three.classes == ["NORMAL", "BACTERIA", "VIRUS"] and three.counts("train") == [1341, 2530, 1345]
    assert all(("virus" in s.source) == (s.label == 2) for s in three.train)


def test_balanced_validation_split(shared_data):
    splits = D.load_dataset("chest-xray-3", shared_data("chest_xray-train.tar.gz"))
    D.make_val_split(splits, D.Carve(0.1, balanced=True))
    assert splits.counts("val") == [134, 134, 134]
    assert len(splits.train) + len(splits.val) == 5216
    assert not {s.sample_id for s in splits.train} & {s.sample_id for s in splits.val}


def test_stratified_split_is_seeded(shared_data):
    root = shared_data("chest_xray-train.tar.gz")
    a, b = D.load_dataset("chest-xray", root), D.load_dataset("chest-xray", root)
    D.make_val_split(a, D.Carve(0.2, seed=7))
    D.make_val_split(b, D.Carve(0.2, seed=7))
    assert a.counts("val") == [268, 775]
    assert [s.sample_id for s in a.val] == [s.sample_id for s in b.val]


def test_fer2013_folders(shared_data):
    root = shared_data("fer2013-train.tar.gz")
    public = shared_data("fer2013-publictest.tar.gz") / "fer2013" / "publictest"
    shutil.copytree(public, root / "fer2013" / "publictest", dirs_exist_ok=True)
    splits = D.load_dataset("fer2013", root)
    assert splits.classes == D.FER_CLASSES
    assert len(splits.train) == 28709 and len(splits.val) == 3589 and not splits.test
    assert splits.counts("train")[1] == 436  # disgust is rare


def test_fer2013_csv(shared_data, tmp_path):
    """fer2013.csv (emotion ids in the csv's own order, 48x48 pixels as text, Usage column)."""
    images = shared_data("fer2013-publictest.tar.gz") / "fer2013" / "publictest"
    path = tmp_path / "fer2013.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["emotion", "pixels", "Usage"])
        for emotion in D.FER_CLASSES:
            for i, image in enumerate(sorted((images / emotion).glob("*.jpg"))[:3]):
                pixels = " ".join(map(str, np.asarray(Image.open(image).convert("L")).reshape(-1)))
                usage = ["Training", "PublicTest", "PrivateTest"][i]
                writer.writerow([D.FER_CSV_ORDER.index(emotion), pixels, usage])
    splits = D.load_dataset("fer2013", tmp_path)
    assert len(splits.train) == len(splits.val) == len(splits.test) == 7
    assert [splits.classes[s.label] for s in splits.train] == D.FER_CLASSES
    assert splits.train[0].source.shape == (48, 48)


def test_fer2013_test_folder_splits_public_and_private(shared_data, tmp_path):
    public = shared_data("fer2013-publictest.tar.gz") / "fer2013" / "publictest"
    for emotion in D.FER_CLASSES:
        for split in ("train", "test"):
            (tmp_path / split / emotion).mkdir(parents=True)
        files = sorted((public / emotion).glob("*.jpg"))[:4]
        shutil.copy(files[0], tmp_path / "train" / emotion / "Training_1.jpg")
        shutil.copy(files[1], tmp_path / "test" / emotion / files[1].name)
        shutil.copy(files[2], tmp_path / "test" / emotion / "PrivateTest_1.jpg")
    splits = D.load_dataset("fer2013", tmp_path)
    assert len(splits.val) == 7 and len(splits.test) == 7 and splits.eval_split == "test"


def test_generic_folder_layout_errors(tmp_path):
    with pytest.raises(D.DataError, match="data directory not found"):
        D.load_dataset("folder", tmp_path / "missing")
    (tmp_path / "cats").mkdir()
    with pytest.raises(D.DataError, match="expected the layout root/train/<class>"):
        D.load_dataset("folder", tmp_path)
    (tmp_path / "train" / "cat").mkdir(parents=True)
    (tmp_path / "train" / "dog").mkdir(parents=True)
    shutil.copy(next((SAMPLE / "train" / "cat").glob("*.jpg")), tmp_path / "train" / "cat")
    with pytest.raises(D.DataError, match="classes with no training images under .*: dog"):
        D.load_dataset("folder", tmp_path)
    shutil.rmtree(tmp_path / "train" / "dog")
    with pytest.raises(D.DataError, match=r"found 1 class \(cat\); a classifier needs at least 2"):
        D.load_dataset("folder", tmp_path)
    with pytest.raises(D.DataError, match="unknown dataset 'imagenet'"):
        D.load_dataset("imagenet", tmp_path)


def test_a_folder_zipped_on_a_mac_reads_as_its_classes(tmp_path):
    """`__MACOSX/` is no class, and the AppleDouble `._x.jpg` beside each image (no image) is no sample."""
    for label in ("cat", "dog"):
        shutil.copytree(SAMPLE / "train" / label, tmp_path / "train" / label)
        for image in list((tmp_path / "train" / label).glob("*.jpg")):
            (image.parent / f"._{image.name}").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
        (tmp_path / "train" / "__MACOSX" / label).mkdir(parents=True)
        (tmp_path / "train" / "__MACOSX" / label / "._x.jpg").write_bytes(b"\x00\x05\x16\x07")
    splits = D.load_dataset("folder", tmp_path)
    assert splits.classes == ["cat", "dog"]
    assert splits.train and not [s for s in splits.train if Path(s.source).name.startswith("._")]


def test_hub_dataset_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(D.DataError, match="cannot load Hub dataset 'uoft-cs/cifar10'.*--dataset folder"):
        D.load_dataset("hf:uoft-cs/cifar10", None)


def test_subsample_keeps_every_class():
    splits = D.load_dataset("cifar10", SAMPLE)
    picked = D.subsample(splits.train, 30, seed=1)
    assert len(picked) == 30 and sorted({s.label for s in picked}) == list(range(10))


def test_subsample_keeps_the_class_proportions():
    """An imbalanced split (the chest X-ray test split's 234 normal, 390 pneumonia) keeps its shape, not equal
    counts: 200 of them are 75 and 125."""
    samples = [D.Sample(f"{i}.jpg", int(i >= 234), f"{i}.jpg") for i in range(624)]
    picked = D.subsample(samples, 200, seed=0)
    assert Counter(s.label for s in picked) == {0: 75, 1: 125}
    assert len({s.sample_id for s in picked}) == 200
    three = [D.Sample(str(i), label, str(i)) for i, label in enumerate([0] * 5 + [1] * 3 + [2] * 2)]
    assert Counter(s.label for s in D.subsample(three, 5, seed=0)) == {0: 3, 1: 1, 2: 1}  # 2.5, 1.5, 1.0


def subjects_split(names_by_class: dict[int, list[str]]) -> D.DatasetSplits:
    samples = [D.Sample(f"/data/train/{label}/{name}", label, f"train/{label}/{name}")
               for label, names in names_by_class.items() for name in names]
    return D.DatasetSplits("folder", ["a", "b"], samples)


def test_grouped_carve_keeps_each_subject_on_one_side():
    """Ten images of each of 40 subjects, some subjects in both classes: no subject crosses the carve, and each class
    gets at most its quota, close to it."""
    a = [f"p{p}_{i}.jpg" for p in range(30) for i in range(10)]
    b = [f"p{p}_b{i}.jpg" for p in range(20, 40) for i in range(10)]  # subjects 20-29 have images of both classes
    splits = subjects_split({0: a, 1: b})
    D.make_val_split(splits, D.Carve(0.2, seed=3, groups=r"^(p\d+)_"))
    subject = lambda s: s.sample_id.split("/")[-1].split("_")[0]  # noqa: E731
    assert not {subject(s) for s in splits.val} & {subject(s) for s in splits.train}
    assert 40 <= splits.counts("val")[0] <= 60 and 20 <= splits.counts("val")[1] <= 40
    assert len(splits.val) + len(splits.train) == 500 and "grouped by --val-groups" in splits.notes[-1]
    again = subjects_split({0: a, 1: b})
    D.make_val_split(again, D.Carve(0.2, seed=3, groups=r"^(p\d+)_"))
    assert [s.sample_id for s in again.val] == [s.sample_id for s in splits.val]  # seeded


def test_grouped_carve_refuses_a_pattern_that_matches_nothing():
    splits = subjects_split({0: ["x1.jpg", "x2.jpg", "x3.jpg"], 1: ["y1.jpg", "y2.jpg", "y3.jpg"]})
    with pytest.raises(D.DataError, match=r"--val-groups '\^patient' matches none of the file names \(e.g. 'x1.jpg'\)"):
        D.make_val_split(splits, D.Carve(0.3, groups="^patient"))
    assert len(splits.train) == 6 and not splits.val  # nothing moved
    D.make_val_split(splits, D.Carve(0.3, groups="^(z)?[xy]"))  # a group that takes no part: each image alone
    assert len(splits.val) == 2
    with pytest.raises(ConfigError, match=r"--val-groups '\(p': not a regular expression"):
        parse_config(["--val-groups", "(p"])
    with pytest.raises(D.DataError, match="--val-groups subject: the file names of --dataset cifar10 name no subject"):
        D.subject_regex("cifar10", D.BY_SUBJECT)


def test_grouped_carve_of_the_chest_xrays_by_patient(shared_data):
    """The Kermany file names carry a patient id (personN, IM-NNNN, NORMAL2-IM-NNNN): a balanced carve by it
    (`--val-groups subject`)."""
    splits = D.load_dataset("chest-xray-3", shared_data("chest_xray-train.tar.gz"))
    D.make_val_split(splits, D.Carve(0.1, balanced=True, seed=42, groups=D.subject_regex("chest-xray-3", "subject")))
    patient = re.compile(r"^(person\d+|IM-\d+|NORMAL2-IM-\d+)")
    ids = [{patient.match(Path(s.sample_id).name)[1] for s in part} for part in (splits.train, splits.val)]
    assert not ids[0] & ids[1]
    assert all(120 <= n <= 134 for n in splits.counts("val")), splits.counts("val")
