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
import html
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from apps.faces import crop_face
from apps.gradcam import GradCamError, gradcam
from apps.sources import REFERENCE_RUNS, Catalog, ModelEntry, configured_hub_ids, discover
from leaderboard.store import default_db_path
from runfolder import RUNS_DIR
from trainers.inference import BACKENDS, ImageError, Prediction, Predictor, images_in, load_image

EXAMPLES = Path(__file__).resolve().parent / "examples"
EXAMPLE_FOLDERS = {"chest-xray-3": "chest-xray"}  # datasets that share another's example images
DEFAULT_RUN_ROOTS = [Path(RUNS_DIR), REFERENCE_RUNS]  # the user's runs where the app starts, and the shipped ones
FACE_DATASETS = {"fer2013"}
SLOTS = 6  # models shown side by side at once
MIN_SIDE = 8  # px: below this an "image" is a few flat colours, and any prediction would be noise
MAX_BATCH = 32
DISPLAY_SIDE = 320  # px: smaller pictures (32 px CIFAR-10, a 96 px Grad-CAM) are shown enlarged to about this
PICTURE_HEIGHT = 340  # px: the input, face crop and Grad-CAM boxes side by side
PICTURE_BUTTONS = ["download", "fullscreen"]  # not "share": visitors' images are not posted to the Hub from here
SMALL_INPUT = "small-input"  # CSS class of the upload box while it holds an image below DISPLAY_SIDE
PREDICTION = "prediction"  # CSS class of the per-model result panels
CONCURRENCY = 2  # requests computed at once; the rest wait in the queue
LOADED_MODELS = 8  # predictors kept in memory
TOP_CLASS = "top prediction"
PRIVATE = {"api_visibility": "private"}  # UI plumbing, not part of the API
RAW = {"preprocess": False}  # uploads reach `decode` undecoded (see there); model names are checked by the pool
# The demo receives people's images: gradio's usage analytics and its start-up version check (requests to
# api.gradio.app and huggingface.co) stay off unless the deployer sets gradio's own variable to True or passes
# --analytics. (gradio's default is on.)
ANALYTICS_ENV = "GRADIO_ANALYTICS_ENABLED"
HOW_TO_TRAIN = (
    "No fine-tuned model found. Train one with `python trainers/finetune.py` (EfficientNet-Lite0 on the bundled "
    "CIFAR-10 sample, a few minutes on a CPU; it writes `runs/<run-id>/`), then restart this app. "
    "Other sources: `--runs DIR`, the leaderboard store (`--db` / `ARENA_DB`), or Hub repos listed in "
    "`ARENA_HUB_MODELS` / `apps/hub_models.txt`."
)

# Summary table cells never wrap (numbers and tags broken mid-word are unreadable): a narrow screen scrolls the
# table instead; a prediction panel's title (a long run name and its time) takes its own lines above the class
# rather than floating over it; a small upload is drawn enlarged with nearest-neighbour pixels, as the model's own
# low-resolution input really looks.
APP_CSS = f"""
#summary {{ overflow-x: auto !important; max-width: 100%; }}
#summary table {{ width: auto; border-collapse: collapse; }}
#summary th, #summary td {{ white-space: nowrap; padding: 4px 12px; text-align: left; }}
#summary td.number {{ text-align: right; font-variant-numeric: tabular-nums; }}
#summary abbr {{ text-decoration: underline dotted; cursor: help; }}
#summary .note {{ font-size: 0.85em; opacity: 0.75; margin-top: 4px; }}
.{SMALL_INPUT} img {{ image-rendering: pixelated; width: 100%; height: 100%; object-fit: contain; }}
#status.error, #status.error * {{ color: #b91c1c; }}
.{PREDICTION} [data-testid="block-label"] {{ position: static; white-space: normal; margin-bottom: 4px; }}
"""
log = logging.getLogger("apps.gradio_app")


def refuse(message: str) -> gr.Error:
    """A handled error for the visitor: logged on one line, and shown without a traceback in the server log."""
    log.warning("refused: %s", message)
    return gr.Error(message, print_exception=False)


def load_warm(source: str, backend: str, calibrated: bool) -> Predictor:
    """A predictor that has run once, so the latency shown for a visitor's first image excludes the warm-up."""
    predictor = Predictor.from_run(source, backend=backend, calibrated=calibrated)
    predictor.warm_up()
    return predictor


class ModelPool:
    """Predictors loaded once and kept (LRU), each behind its own lock.

    The lock serialises one model's loading, prediction and Grad-CAM: Grad-CAM hooks the shared module, so another
    request's forward pass through it must not run meanwhile. Different models still run concurrently.
    """

    def __init__(self, catalog: Catalog, max_loaded: int = LOADED_MODELS, backend: str = "torch",
                 calibrated: bool = True):
        self.catalog = catalog
        self.backend = backend
        self._load = lru_cache(maxsize=max_loaded)(partial(load_warm, backend=backend, calibrated=calibrated))
        self._locks: dict[str, threading.Lock] = {}

    def entry(self, name: str) -> ModelEntry:
        try:
            return self.catalog.get(name)
        except KeyError:
            raise refuse(f"unknown model {name!r}; available: {', '.join(self.names()) or 'none'}") from None

    @contextmanager
    def use(self, name: str) -> Iterator[Predictor]:
        entry = self.entry(name)
        with self._locks.setdefault(entry.source, threading.Lock()):
            try:
                predictor = self._load(entry.source)
            except Exception as err:  # broken weights, unreachable Hub: name the model, keep serving the others
                raise refuse(f"model {name} could not be loaded: {type(err).__name__}: {err}") from err
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
        raise refuse(str(err)) from None


def probabilities(prediction: Prediction, row: int = 0) -> dict[str, float]:
    return {label: float(p) for label, p in zip(prediction.labels, prediction.probs[row], strict=True)}


def chosen(pool: ModelPool, models: list[str] | None) -> list[str]:
    if not pool.catalog.models:
        raise refuse(HOW_TO_TRAIN)
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
        raise refuse("no images given")
    if len(files) > MAX_BATCH:
        raise refuse(f"{len(files)} images: at most {MAX_BATCH} per request")
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


@dataclass
class Results:
    """Everything the result area shows. `updates()` replaces every result component, so a new image, a task
    switch or an error never leaves an earlier image's labels, table or Grad-CAM on screen."""

    status: str | None = ""  # markdown note or error; None leaves the current one (see `on_image`)
    error: bool = False
    summary: str = ""  # HTML table
    face: Image.Image | None = None
    cam: Image.Image | None = None
    cam_caption: str = ""  # markdown under the heatmap: whose, which class, at what size
    labels: list[tuple[str, dict[str, float]]] = field(default_factory=list)  # (title, probabilities) per model

    def updates(self) -> list:
        status = gr.skip() if self.status is None else status_update(self.status, self.error)
        face_caption = f"Face the models saw · {size_caption(self.face)}" if self.face else "Face crop"
        shown = [gr.Label(value=probs, label=title, visible=True) for title, probs in self.labels]
        return [
            status,
            gr.HTML(self.summary, visible=bool(self.summary)),
            gr.Image(enlarged(self.face) if self.face else None, label=face_caption, visible=self.face is not None),
            gr.Image(self.cam),
            gr.Markdown(self.cam_caption),
            *shown,
            *[gr.Label(value=None, visible=False)] * (SLOTS - len(shown)),
        ]


def status_update(text: str, error: bool = False) -> gr.Markdown:
    return gr.Markdown(text, visible=bool(text), elem_classes=["error"] if error else [])


def failure(what: str, err: gr.Error | ImageError) -> str:
    return f"**{what}:** {err.message if isinstance(err, gr.Error) else err}"


def display_scale(image: Image.Image) -> int:
    """The whole factor that brings a small picture to about DISPLAY_SIDE (1 for larger ones)."""
    return max(1, DISPLAY_SIDE // max(image.size))


def enlarged(image: Image.Image) -> Image.Image:
    """`image` scaled up by `display_scale`, nearest-neighbour: every pixel the model saw stays a sharp square
    instead of a blur (or a speck)."""
    scale = display_scale(image)
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST)


def size_caption(image: Image.Image) -> str:
    """The true size, and the enlargement when `enlarged` applies one."""
    scale = display_scale(image)
    return f"{image.width}×{image.height} px" + (f", shown ×{scale}" if scale > 1 else "")


def summary_table(pool: ModelPool, predictions: dict[str, Prediction]) -> str:
    """One row per model, cells that never wrap; what each backbone's weights started from is its tooltip."""
    entries = [pool.entry(name) for name in predictions]
    splits = {entry.eval_split for entry in entries}
    split = splits.pop() if len(splits) == 1 else None  # one split: say it once, in the header
    rows = []
    for entry, prediction in zip(entries, predictions.values(), strict=True):
        (best, p), = prediction.topk(0, 1)
        cells = [
            f"<td>{html.escape(entry.name)}</td>",
            f'<td><abbr title="{html.escape(entry.pretraining)}">{html.escape(entry.architecture)}</abbr></td>',
            f'<td class="number">{html.escape(entry.top1_text if split else entry.score)}</td>',
            f'<td class="number">{prediction.latency_ms:.1f}</td>',
            f"<td>{html.escape(best)} ({p:.1%})</td>",
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    score = f"top-1 ({split} split)" if split else "top-1 (split)"
    head = "".join(f"<th>{h}</th>" for h in ("model", "backbone", score, "forward ms", "top prediction"))
    note = (f"forward ms: this image's forward pass on the server's CPU ({pool.backend}), with the model already "
            "warm; decoding and resizing not included. Hover a backbone for what its weights started from.")
    return f'<table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table><p class="note">{note}</p>'


def gradcam_view(pool: ModelPool, picture: Image.Image, model: str, target: str | None) -> tuple[Image.Image, str]:
    """Grad-CAM of `target` (a label, or the model's top prediction) for one model, enlarged, with its caption."""
    with pool.use(model) as predictor:
        if predictor.model is None:
            raise refuse("Grad-CAM needs the PyTorch model: start the app with --backend torch")
        if target and target != TOP_CLASS:
            if target not in predictor.labels:
                raise refuse(f"{model} has no class {target!r}")
            index = predictor.labels.index(target)
        else:
            index = int(predictor.predict([picture]).probs[0].argmax())
        try:
            overlay = Image.fromarray(gradcam(predictor, picture, index))
        except GradCamError as err:
            raise refuse(str(err)) from None
    caption = (f"Where **{model}** looked for **{predictor.labels[index]}**: Grad-CAM on the model's input, "
               f"{size_caption(overlay)}. Red: the regions that raised that class's score most; blue: least (scaled "
               "per image).")
    return enlarged(overlay), caption


def compare(pool: ModelPool, image: dict | None, models: list[str], use_face: bool,
            cam_model: str | None = None, cam_class: str | None = None) -> Results:
    """Top-5 of every selected model side by side, the summary table, the face crop if used, and the Grad-CAM
    of `cam_model` (the first model unless it is one of those selected)."""
    if pool.catalog.models and not models:  # the page compares the task's models; "all" would mix other tasks in
        raise refuse("choose at least one model to compare")
    names = chosen(pool, models)
    notes = []
    if len(names) > SLOTS:
        notes.append(f"{len(names)} models selected: showing the first {SLOTS}.")
        names = names[:SLOTS]
    picture = decode_or_fail(image)
    face = None
    if use_face:
        picture, note = face_crop(picture)
        face = picture
        if note:
            notes.append(note)
    predictions = pool.predict(names, [picture])
    if cam_model not in names:
        cam_model, cam_class = names[0], TOP_CLASS
    try:
        cam, cam_caption = gradcam_view(pool, picture, cam_model, cam_class)
    except gr.Error as err:  # the predictions stand; say why there is no heatmap where it would be
        cam, cam_caption = None, f"No Grad-CAM: {err.message}"
    labels = [(f"{name} · {p.latency_ms:.1f} ms", probabilities(p)) for name, p in predictions.items()]
    return Results(status=" ".join(notes), summary=summary_table(pool, predictions), face=face, cam=cam,
                   cam_caption=cam_caption, labels=labels)


def on_predict(pool: ModelPool, image: dict | None, models: list[str], use_face: bool, cam_model: str | None,
               cam_class: str | None) -> list:
    try:
        return compare(pool, image, models, use_face, cam_model, cam_class).updates()
    except gr.Error as err:
        return Results(failure("Not predicted", err), error=True).updates()


def on_explain(pool: ModelPool, image: dict | None, model: str | None, target: str | None, use_face: bool) -> list:
    """[status, Grad-CAM, its caption]: a new heatmap for the chosen model and class, or an error in place of the
    old one."""
    try:
        if not model:
            raise refuse("choose a model for Grad-CAM")
        picture = decode_or_fail(image)
        if use_face:
            picture, _ = face_crop(picture)
        cam, caption = gradcam_view(pool, picture, model, target)
    except gr.Error as err:
        return [status_update(failure("No Grad-CAM", err), error=True), gr.Image(None), gr.Markdown("")]
    return [status_update(""), gr.Image(cam), gr.Markdown(caption)]


def on_image(image: dict | None) -> list:
    """[upload box, results...] for a new or removed input: every result goes, and a file that is not a usable
    image is refused now, before Predict. The upload box's caption gives the image's true size."""
    if not image:  # removed, or cleared after a refusal: keep the refusal message on screen
        return [gr.Image(label="Image", elem_classes=[]), *Results(status=None).updates()]
    try:
        picture = decode(image)
    except ImageError as err:
        log.warning("refused upload: %s", err)
        refused = Results(failure("Image refused", err), error=True)
        return [gr.Image(None, label="Image", elem_classes=[]), *refused.updates()]
    small = max(picture.size) < DISPLAY_SIDE
    return [gr.Image(label=f"Image · {picture.width}×{picture.height} px" + (", shown enlarged" if small else ""),
                     elem_classes=[SMALL_INPUT] if small else []),
            *Results().updates()]


def cleared() -> list:
    return Results().updates()


def class_choices(pool: ModelPool, model: str | None) -> gr.Dropdown:
    if not model:
        return gr.Dropdown(choices=[TOP_CLASS], value=TOP_CLASS)
    with pool.use(model) as predictor:
        return gr.Dropdown(choices=[TOP_CLASS, *predictor.labels], value=TOP_CLASS)


def example_files(dataset: str) -> list[str]:
    folder = EXAMPLES / EXAMPLE_FOLDERS.get(dataset, dataset)
    return [str(p) for p in images_in(folder)] if folder.is_dir() else []


def model_choices(catalog: Catalog, dataset: str | None) -> list[tuple[str, str]]:
    return [(m.title, m.name) for m in catalog.for_dataset(dataset)]


def on_dataset(catalog: Catalog, dataset: str | None) -> list:
    """A new task: its models (best first, up to SLOTS selected), its examples, face crop for FER; and no result
    of the previous task left on screen."""
    models = catalog.for_dataset(dataset)
    selected = [m.name for m in models[:SLOTS]]
    return [
        gr.CheckboxGroup(choices=model_choices(catalog, dataset), value=selected),
        gr.Checkbox(visible=dataset in FACE_DATASETS, value=dataset in FACE_DATASETS),
        gr.Dropdown(choices=selected, value=selected[0] if selected else None),
        *[gr.Column(visible=name == dataset) for name in example_datasets(catalog)],
        *cleared(),
    ]


def on_models(models: list[str]) -> list:
    """Another selection: the Grad-CAM model list follows it, and results of the old selection go."""
    return [gr.Dropdown(choices=models, value=models[0] if models else None), *cleared()]


def example_datasets(catalog: Catalog) -> list[str]:
    return [d for d in catalog.datasets() if example_files(d)]


def intro(catalog: Catalog) -> str:
    lines = ["# Backbone Arena", "Which pretrained backbone wins on your images? Pick a task, give an image, and "
             "compare every fine-tuned model's top-5 and speed; Grad-CAM shows where a model looked."]
    if not catalog.models:
        lines.append(f"**{HOW_TO_TRAIN}**")
    lines += [f"- {note}" for note in catalog.notes]
    return "\n\n".join(lines)


def analytics_requested() -> bool:
    return os.environ.get(ANALYTICS_ENV, "False") == "True"


@dataclass
class ComparePage:
    """The Compare tab's components, for wiring its events."""

    dataset: gr.Dropdown
    models: gr.CheckboxGroup
    image: gr.Image
    use_face: gr.Checkbox
    run: gr.Button
    example_columns: list[gr.Column]  # one per dataset with example images; the chosen dataset's is visible
    status: gr.Markdown
    summary: gr.HTML
    face: gr.Image
    cam_image: gr.Image
    cam_caption: gr.Markdown
    cam_model: gr.Dropdown
    cam_class: gr.Dropdown
    cam_run: gr.Button
    slots: list[gr.Label]

    @property
    def results(self) -> list:
        """What a prediction updates, in the order of `Results.updates()`."""
        return [self.status, self.summary, self.face, self.cam_image, self.cam_caption, *self.slots]


def build_app(catalog: Catalog, backend: str = "torch", analytics: bool | None = None,
              calibrated: bool = True) -> gr.Blocks:
    """The page and the API. Launch it with `launch` (it brings the page's CSS). Gradio analytics: `analytics`,
    else on only when $GRADIO_ANALYTICS_ENABLED is True."""
    pool = ModelPool(catalog, backend=backend, calibrated=calibrated)
    analytics = analytics_requested() if analytics is None else analytics
    with gr.Blocks(title="Backbone Arena", analytics_enabled=analytics) as demo:
        gr.Markdown(intro(catalog), elem_id="intro")
        with gr.Tab("Compare"), gr.Row():
            page = compare_page(catalog)
        with gr.Tab("API"):
            api_tab(pool)
        wire_compare(page, pool, catalog)
    return demo


def compare_page(catalog: Catalog) -> ComparePage:
    """The inputs on the left (dataset, models, image, examples), the results on the right, for the first dataset."""
    datasets = catalog.datasets()
    first = datasets[0] if datasets else None
    selected = [m.name for m in catalog.for_dataset(first)[:SLOTS]]
    with gr.Column(scale=1, min_width=320):
        dataset = gr.Dropdown(datasets, value=first, label="Dataset / task", elem_id="dataset")
        models = gr.CheckboxGroup(model_choices(catalog, first), value=selected, label="Models")
        image = gr.Image(type="filepath", sources=["upload", "webcam", "clipboard"], label="Image",
                         height=PICTURE_HEIGHT, elem_id="image")
        use_face = gr.Checkbox(value=first in FACE_DATASETS, visible=first in FACE_DATASETS,
                               label="Crop to the face first (OpenCV Haar cascade)")
        run = gr.Button("Predict", variant="primary")
        example_columns = []
        for name in example_datasets(catalog):
            with gr.Column(visible=name == first) as column:
                gr.Examples(example_files(name), inputs=[image], label=f"Examples: {name}")
            example_columns.append(column)
    with gr.Column(scale=2):
        status = gr.Markdown(visible=False, elem_id="status")
        summary = gr.HTML(visible=False, elem_id="summary")
        with gr.Row():
            cam_image = gr.Image(label="Grad-CAM", interactive=False, height=PICTURE_HEIGHT, elem_id="gradcam",
                                 buttons=PICTURE_BUTTONS)
            face = gr.Image(label="Face crop", visible=False, height=PICTURE_HEIGHT, interactive=False,
                            elem_id="face", buttons=PICTURE_BUTTONS)
        cam_caption = gr.Markdown(elem_id="cam-caption")
        with gr.Row(equal_height=True):
            cam_model = gr.Dropdown(selected, value=selected[0] if selected else None, label="Grad-CAM model")
            cam_class = gr.Dropdown([TOP_CLASS], value=TOP_CLASS, label="Grad-CAM class")
            cam_run = gr.Button("Show Grad-CAM", scale=0, min_width=200)
        with gr.Row():
            slots = [gr.Label(num_top_classes=5, visible=False, min_width=200, elem_classes=[PREDICTION])
                     for _ in range(SLOTS)]
    return ComparePage(dataset, models, image, use_face, run, example_columns, status, summary, face, cam_image,
                       cam_caption, cam_model, cam_class, cam_run, slots)


def wire_compare(page: ComparePage, pool: ModelPool, catalog: Catalog) -> None:
    results = page.results
    page.dataset.change(partial(on_dataset, catalog), page.dataset,
                        [page.models, page.use_face, page.cam_model, *page.example_columns, *results], **PRIVATE)
    page.models.change(on_models, page.models, [page.cam_model, *results], **PRIVATE)
    page.use_face.change(cleared, None, results, **PRIVATE)
    page.image.change(on_image, page.image, [page.image, *results], **PRIVATE, **RAW)
    page.cam_model.change(partial(class_choices, pool), page.cam_model, page.cam_class, **PRIVATE)
    page.run.click(partial(on_predict, pool), [page.image, page.models, page.use_face, page.cam_model,
                                                page.cam_class], results, **PRIVATE, **RAW)
    page.cam_run.click(partial(on_explain, pool), [page.image, page.cam_model, page.cam_class, page.use_face],
                       [page.status, page.cam_image, page.cam_caption], **PRIVATE, **RAW)


def api_tab(pool: ModelPool) -> None:
    """The API's two endpoints, each with a form that calls it."""
    gr.Markdown(api_help())
    models = gr.Dropdown(pool.names(), multiselect=True, label="Models (empty: all)")
    with gr.Row():
        with gr.Column():
            image = gr.Image(type="filepath", label="One image")
            run = gr.Button("Predict (/predict)")
            out = gr.JSON(label="/predict")
        with gr.Column():
            files = gr.File(file_count="multiple", type="filepath", file_types=["image"], label="Several images")
            batch_run = gr.Button("Predict all (/predict_batch)")
            batch_out = gr.JSON(label="/predict_batch")
    run.click(partial(api_predict, pool), [image, models], out, api_name="predict", **RAW)
    batch_run.click(partial(api_predict_batch, pool), [files, models], batch_out, api_name="predict_batch", **RAW)


def launch(demo: gr.Blocks, **options: Any) -> tuple:
    """`demo.launch` with the page's CSS (gradio 6 takes CSS at launch, not in `gr.Blocks`)."""
    return demo.launch(css=APP_CSS, **options)


def api_help() -> str:
    return """Call the app from Python with `gradio_client`:

```python
from gradio_client import Client, handle_file
client = Client("http://127.0.0.1:7860/")  # the address this app runs at
client.predict(handle_file("cat.jpg"), [], api_name="/predict")            # {model: {label: probability}}
client.predict([handle_file("a.jpg"), handle_file("b.png")], [], api_name="/predict_batch")
```
The second argument names models (empty: every model of every task, each answering in its own classes). An
unreadable image is refused with a message (`/predict`) or gets an `error` entry (`/predict_batch`)."""


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
    parser.add_argument("--analytics", action="store_true",
                        help=f"send gradio's usage analytics and check its version at start-up (default off; "
                             f"{ANALYTICS_ENV}=True does the same)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    catalog = discover([*DEFAULT_RUN_ROOTS, *args.runs], args.db or default_db_path(), configured_hub_ids())
    print(f"{len(catalog.models)} model(s) for {len(catalog.datasets())} dataset(s)", flush=True)
    demo = build_app(catalog, backend=args.backend, analytics=args.analytics or None, calibrated=args.calibrated)
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=64)
    launch(demo, server_name=args.host, server_port=args.port, max_file_size="50mb", show_error=True)


if __name__ == "__main__":
    main()
