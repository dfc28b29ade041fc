#!/usr/bin/env python
"""Backbone Arena's Gradio app: every fine-tuned model's top-5 side by side, Grad-CAM, and a JSON API.

    python apps/gradio_app.py                          # runs/ and reference/ if present, the leaderboard store
    python apps/gradio_app.py --runs ~/arena-runs --port 7861 --db leaderboard.db
    ARENA_HUB_MODELS=org/cifar10-resnet50,org/fer-vgg16 python apps/gradio_app.py

API (gradio_client): `/predict` (one image, optional list of model names) -> {model: {label: probability}};
`/predict_batch` (several images) -> [{"image": name, "predictions": {...}} or {"image": name, "error": why}].
Every image goes through `trainers.inference` (the one decoding and preprocessing path).
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache, partial
from pathlib import Path

if __package__ in (None, ""):  # run as a script (also on a Space): make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gradio as gr
from PIL import Image

from apps.faces import crop_face
from apps.gradcam import GradCamError, gradcam
from apps.sources import Catalog, ModelEntry, configured_hub_ids, discover
from leaderboard.store import default_db_path
from trainers.inference import BACKENDS, ImageError, Prediction, Predictor, load_image

EXAMPLES = Path(__file__).resolve().parent / "examples"
EXAMPLE_FOLDERS = {"chest-xray-3": "chest-xray"}  # datasets that share another's example images
DEFAULT_RUN_ROOTS = [Path("runs"), Path("reference")]
FACE_DATASETS = {"fer2013"}
SLOTS = 6  # models shown side by side at once
MIN_SIDE = 8  # px: below this an "image" is a few flat colours, and any prediction would be noise
MAX_BATCH = 32
CAM_DISPLAY = 256  # px
CONCURRENCY = 2  # requests computed at once; the rest wait in the queue
LOADED_MODELS = 8  # predictors kept in memory
TOP_CLASS = "top prediction"
HOW_TO_TRAIN = (
    "No fine-tuned model found. Train one with `python trainers/finetune.py` (EfficientNet-Lite0 on the bundled "
    "CIFAR-10 sample, a few minutes on a CPU; it writes `runs/<run-id>/`), then restart this app. "
    "Other sources: `--runs DIR`, the leaderboard store (`--db` / `ARENA_DB`), or Hub repos listed in "
    "`ARENA_HUB_MODELS` / `apps/hub_models.txt`."
)


class ModelPool:
    """Predictors loaded once and kept (LRU), each behind its own lock.

    The lock serialises one model's loading, prediction and Grad-CAM: Grad-CAM hooks the shared module, so another
    request's forward pass through it must not run meanwhile. Different models still run concurrently.
    """

    def __init__(self, catalog: Catalog, max_loaded: int = LOADED_MODELS, backend: str = "torch",
                 calibrated: bool = True):
        self.catalog = catalog
        self._load = lru_cache(maxsize=max_loaded)(partial(Predictor.from_run, backend=backend, calibrated=calibrated))
        self._locks: dict[str, threading.Lock] = {}

    def entry(self, name: str) -> ModelEntry:
        try:
            return self.catalog.get(name)
        except KeyError:
            raise gr.Error(f"unknown model {name!r}; available: {', '.join(self.names()) or 'none'}") from None

    @contextmanager
    def use(self, name: str) -> Iterator[Predictor]:
        entry = self.entry(name)
        with self._locks.setdefault(entry.source, threading.Lock()):
            try:
                predictor = self._load(entry.source)
            except Exception as err:  # broken weights, unreachable Hub: name the model, keep serving the others
                raise gr.Error(f"model {name} could not be loaded: {type(err).__name__}: {err}") from err
            yield predictor

    def names(self) -> list[str]:
        return [m.name for m in self.catalog.models]

    def predict(self, names: list[str], images: list[Image.Image]) -> dict[str, Prediction]:
        out = {}
        for name in names:
            with self.use(name) as predictor:
                out[name] = predictor.predict(images)
        return out


# ---- decoding and prediction, shared by the UI and the API


def decode(upload: dict | None) -> Image.Image:
    """The upright RGB image of an upload, or an ImageError whose message names the visitor's file.

    Events run with preprocess=False, so uploads arrive as gradio FileData dicts that gradio has not decoded:
    every image meets `load_image`'s guards and messages (gradio would open it with PIL first otherwise).
    """
    if not upload or not upload.get("path"):
        raise ImageError("no image given")
    path = upload["path"]
    name = upload.get("orig_name") or Path(path).name
    try:
        image = load_image(path, "RGB")
    except ImageError as err:
        raise ImageError(str(err).replace(str(path), name)) from None
    if min(image.size) < MIN_SIDE:
        raise ImageError(f"{name}: image is {image.width}x{image.height} px; at least "
                         f"{MIN_SIDE}x{MIN_SIDE} is needed for a meaningful prediction")
    return image


def decode_or_fail(upload: dict | None) -> Image.Image:
    try:
        return decode(upload)
    except ImageError as err:
        raise gr.Error(str(err)) from None


def probabilities(prediction: Prediction, row: int = 0) -> dict[str, float]:
    return {label: float(p) for label, p in zip(prediction.labels, prediction.probs[row], strict=True)}


def chosen(pool: ModelPool, models: list[str] | None) -> list[str]:
    if not pool.catalog.models:
        raise gr.Error(HOW_TO_TRAIN)
    names = list(models) if models else pool.names()
    for name in names:
        pool.entry(name)  # refuse unknown names before computing anything
    return names


def face_crop(image: Image.Image) -> tuple[Image.Image, str]:
    face = crop_face(image)
    if face is None:
        return image, "No face found: the whole image was used."
    return face, ""


# ---- the API endpoints


def api_predict(pool: ModelPool, image: dict | None, models: list[str] | None) -> dict[str, dict[str, float]]:
    """One image -> {model: {label: probability}} for the given models (default: all)."""
    names = chosen(pool, models)
    predictions = pool.predict(names, [decode_or_fail(image)])
    return {name: probabilities(p) for name, p in predictions.items()}


def api_predict_batch(pool: ModelPool, files: list[dict] | None, models: list[str] | None) -> list[dict]:
    """Several images -> one entry per image, in order; an unreadable image gets an `error` instead."""
    names = chosen(pool, models)
    if not files:
        raise gr.Error("no images given")
    if len(files) > MAX_BATCH:
        raise gr.Error(f"{len(files)} images: at most {MAX_BATCH} per request")
    results: list[dict] = [{"image": f.get("orig_name") or Path(f["path"]).name} for f in files]
    images, rows = [], []
    for i, upload in enumerate(files):
        try:
            images.append(decode(upload))
            rows.append(i)
        except ImageError as err:
            results[i]["error"] = str(err)
    if images:
        predictions = pool.predict(names, images)
        for j, i in enumerate(rows):
            results[i]["predictions"] = {name: probabilities(p, j) for name, p in predictions.items()}
    return results


# ---- the visitor's page


def compare(pool: ModelPool, image: dict | None, models: list[str], use_face: bool) -> list:
    """Top-5 of every selected model side by side (one Label per slot), latencies, and the face crop if used."""
    names = chosen(pool, models)
    if len(names) > SLOTS:
        gr.Warning(f"{len(names)} models selected: showing the first {SLOTS}")
        names = names[:SLOTS]
    picture = decode_or_fail(image)
    face = None
    if use_face:
        picture, note = face_crop(picture)
        face = picture
        if note:
            gr.Warning(note)
    predictions = pool.predict(names, [picture])
    rows = ["| model | backbone | val top-1 | latency | prediction |", "|---|---|---|---|---|"]
    labels = []
    for name, prediction in predictions.items():
        entry = pool.entry(name)
        (best, p), latency = prediction.topk(0, 1)[0], prediction.latency_ms
        top1 = f"{entry.top1:.1%}" if entry.top1 is not None else "n/a"
        rows.append(f"| {name} | {entry.backbone} | {top1} | {latency:.1f} ms | {best} ({p:.1%}) |")
        labels.append(gr.Label(value=probabilities(prediction), label=f"{name} · {latency:.1f} ms", visible=True))
    labels += [gr.Label(value=None, visible=False)] * (SLOTS - len(labels))
    return [gr.Markdown("\n".join(rows)), gr.Image(value=face, visible=face is not None), *labels]


def explain(pool: ModelPool, image: dict | None, model: str | None, target: str | None, use_face: bool):
    """Grad-CAM overlay of `target` (a label, or the model's top prediction) for one model."""
    if not model:
        raise gr.Error("choose a model for Grad-CAM")
    picture = decode_or_fail(image)
    if use_face:
        picture, _ = face_crop(picture)
    with pool.use(model) as predictor:
        if predictor.model is None:
            raise gr.Error("Grad-CAM needs the PyTorch model: start the app with --backend torch")
        if target and target != TOP_CLASS:
            index = predictor.labels.index(target)
        else:
            index = int(predictor.predict([picture]).probs[0].argmax())
        try:
            overlay = gradcam(predictor, picture, index)
        except GradCamError as err:
            raise gr.Error(str(err)) from None
    # Shown at least CAM_DISPLAY px wide: a 32-64 px model input would otherwise be a speck on the page.
    scale = max(1, CAM_DISPLAY // max(overlay.shape[:2]))
    shown = Image.fromarray(overlay).resize((overlay.shape[1] * scale, overlay.shape[0] * scale), Image.NEAREST)
    return gr.Image(value=shown, label=f"Grad-CAM · {model} · {predictor.labels[index]}")


def class_choices(pool: ModelPool, model: str | None) -> gr.Dropdown:
    if not model:
        return gr.Dropdown(choices=[TOP_CLASS], value=TOP_CLASS)
    with pool.use(model) as predictor:
        return gr.Dropdown(choices=[TOP_CLASS, *predictor.labels], value=TOP_CLASS)


def example_files(dataset: str) -> list[str]:
    folder = EXAMPLES / EXAMPLE_FOLDERS.get(dataset, dataset)
    return sorted(str(p) for p in folder.glob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})


def model_choices(catalog: Catalog, dataset: str | None) -> list[tuple[str, str]]:
    return [(m.title, m.name) for m in catalog.for_dataset(dataset)]


def on_dataset(catalog: Catalog, dataset: str | None) -> list:
    """A new task: its models (best first, up to SLOTS selected), its examples, face crop for FER."""
    models = catalog.for_dataset(dataset)
    selected = [m.name for m in models[:SLOTS]]
    return [
        gr.CheckboxGroup(choices=model_choices(catalog, dataset), value=selected),
        gr.Checkbox(visible=dataset in FACE_DATASETS, value=dataset in FACE_DATASETS),
        gr.Dropdown(choices=selected, value=selected[0] if selected else None),
        *[gr.Column(visible=name == dataset) for name in example_datasets(catalog)],
    ]


def example_datasets(catalog: Catalog) -> list[str]:
    return [d for d in catalog.datasets() if example_files(d)]


def intro(catalog: Catalog) -> str:
    lines = ["# Backbone Arena", "Which pretrained backbone wins on your images? Pick a task, give an image, and "
             "compare every fine-tuned model's top-5 and speed; Grad-CAM shows where a model looked."]
    if not catalog.models:
        lines.append(f"**{HOW_TO_TRAIN}**")
    lines += [f"- {note}" for note in catalog.notes]
    return "\n\n".join(lines)


def build_app(catalog: Catalog, backend: str = "torch", calibrated: bool = True) -> gr.Blocks:
    pool = ModelPool(catalog, backend=backend, calibrated=calibrated)
    datasets = catalog.datasets()
    first = datasets[0] if datasets else None
    selected = [m.name for m in catalog.for_dataset(first)[:SLOTS]]
    with gr.Blocks(title="Backbone Arena") as demo:
        gr.Markdown(intro(catalog), elem_id="intro")
        with gr.Tab("Compare"), gr.Row():
            with gr.Column(scale=1):
                dataset = gr.Dropdown(datasets, value=first, label="Dataset / task")
                models = gr.CheckboxGroup(model_choices(catalog, first), value=selected, label="Models")
                image = gr.Image(type="filepath", sources=["upload", "webcam", "clipboard"], label="Image", height=280,
                                     elem_id="image")
                use_face = gr.Checkbox(value=first in FACE_DATASETS, visible=first in FACE_DATASETS,
                                       label="Crop to the face first (OpenCV Haar cascade)")
                run = gr.Button("Predict", variant="primary")
                example_columns = []
                for name in example_datasets(catalog):
                    with gr.Column(visible=name == first) as column:
                        gr.Examples(example_files(name), inputs=[image], label=f"Examples: {name}")
                    example_columns.append(column)
            with gr.Column(scale=2):
                summary = gr.Markdown(elem_id="summary")
                with gr.Row():
                    slots = [gr.Label(num_top_classes=5, visible=False) for _ in range(SLOTS)]
                face = gr.Image(label="Face crop the models saw", visible=False, height=160, interactive=False)
                with gr.Accordion("Grad-CAM", open=True):
                    with gr.Row():
                        cam_model = gr.Dropdown(selected, value=selected[0] if selected else None, label="Model")
                        cam_class = gr.Dropdown([TOP_CLASS], value=TOP_CLASS, label="Class")
                    cam_run = gr.Button("Show Grad-CAM")
                    cam_image = gr.Image(label="Grad-CAM", interactive=False, height=300, elem_id="gradcam")
        with gr.Tab("API"):
            gr.Markdown(api_help())
            api_models = gr.Dropdown(pool.names(), multiselect=True, label="Models (empty: all)")
            with gr.Row():
                with gr.Column():
                    api_image = gr.Image(type="filepath", label="One image")
                    api_run = gr.Button("Predict (/predict)")
                    api_out = gr.JSON(label="/predict")
                with gr.Column():
                    api_files = gr.File(file_count="multiple", type="filepath", label="Several images")
                    batch_run = gr.Button("Predict all (/predict_batch)")
                    batch_out = gr.JSON(label="/predict_batch")

        private = {"api_visibility": "private"}  # UI plumbing, not part of the API
        raw = {"preprocess": False}  # uploads reach `decode` undecoded (see there); model names are checked by the pool
        dataset.change(partial(on_dataset, catalog), dataset, [models, use_face, cam_model, *example_columns],
                       **private)
        models.change(lambda m: gr.Dropdown(choices=m, value=m[0] if m else None), models, cam_model, **private)
        cam_model.change(partial(class_choices, pool), cam_model, cam_class, **private)
        run.click(partial(compare, pool), [image, models, use_face], [summary, face, *slots], **private, **raw)
        cam_run.click(partial(explain, pool), [image, cam_model, cam_class, use_face], cam_image, **private, **raw)
        api_run.click(partial(api_predict, pool), [api_image, api_models], api_out, api_name="predict", **raw)
        batch_run.click(partial(api_predict_batch, pool), [api_files, api_models], batch_out, api_name="predict_batch",
                        **raw)
    return demo


def api_help() -> str:
    return """Call the app from Python with `gradio_client`:

```python
from gradio_client import Client, handle_file
client = Client("http://127.0.0.1:7860/")
client.predict(handle_file("cat.jpg"), [], api_name="/predict")            # {model: {label: probability}}
client.predict([handle_file("a.jpg"), handle_file("b.png")], [], api_name="/predict_batch")
```
The second argument names models (empty: all). An unreadable image is refused with a message (`/predict`) or gets an
`error` entry (`/predict_batch`)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python apps/gradio_app.py", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=None, help="interface (default 127.0.0.1, or $GRADIO_SERVER_NAME)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860, or $GRADIO_SERVER_PORT)")
    parser.add_argument("--runs", type=Path, action="append", default=[],
                        help="also offer the run folders under DIR (repeatable; runs/ and reference/ always)")
    parser.add_argument("--db", type=Path, default=None, help="leaderboard store (default $ARENA_DB or the user cache)")
    parser.add_argument("--backend", choices=BACKENDS, default="torch",
                        help="onnx: each model.onnx (python -m trainers.export) on onnxruntime; no Grad-CAM")
    parser.add_argument("--no-calibration", dest="calibrated", action="store_false",
                        help="show raw softmax probabilities, without each run's fitted temperature")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    catalog = discover([*DEFAULT_RUN_ROOTS, *args.runs], args.db or default_db_path(), configured_hub_ids())
    print(f"{len(catalog.models)} model(s) for {len(catalog.datasets())} dataset(s)", flush=True)
    demo = build_app(catalog, backend=args.backend, calibrated=args.calibrated)
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=64)
    demo.launch(server_name=args.host, server_port=args.port, max_file_size="50mb", show_error=True)


if __name__ == "__main__":
    main()
