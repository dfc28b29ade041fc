"""Face crop for facial-expression models: OpenCV's Haar cascade (it ships with OpenCV), largest face wins.

FER2013 images are tight 48x48 face crops; a webcam photo or a portrait must be cropped the same way before a
FER model sees it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

CASCADE = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
MARGIN = 0.15  # of the face box on each side: FER2013 crops show the whole face with a little border
ALREADY_CROPPED = 64  # px: an image no larger than this (FER2013's own are 48x48) is a face crop already


def crop_face(image: Image.Image) -> Image.Image | None:
    """The largest detected face with a margin (small images as they are), or None when no face is found."""
    if max(image.size) <= ALREADY_CROPPED:
        return image
    # A classifier per call: detectMultiScale on one shared instance is not safe across request threads.
    detector = cv2.CascadeClassifier(str(CASCADE))
    gray = np.asarray(image.convert("L"))
    faces = detector.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda box: box[2] * box[3])
    pad = int(MARGIN * max(w, h))
    return image.crop((max(x - pad, 0), max(y - pad, 0), min(x + w + pad, image.width), min(y + h + pad, image.height)))
