"""One photo, one answer: ``answer(engine, path)`` decodes the file exactly as ``get_batches`` and ``dl1
classify`` do (``dl1.data.files``), runs the engine, and returns the probabilities by class, the image as
the model saw it (resized, uint8) and a line describing the file; a file that is not a readable image is an
``Answer`` with only the reason, so the app shows it and goes on serving."""

import dataclasses
import os
import time

import numpy as np

from dl1.data.files import describe_image, load_images
from dl1.data.images import UnreadableImage


@dataclasses.dataclass
class Answer:
    """The app's answer for one file: ``probabilities`` ({class: p}, most likely first) and ``seen`` (the
    (h, w, 3) uint8 image the model was given) when it could be read, else ``problem`` (why not)."""

    name: str
    description: str = ""
    probabilities: dict = dataclasses.field(default_factory=dict)
    seen: np.ndarray | None = None
    problem: str | None = None
    seconds: float = 0.0

    @property
    def predicted(self):
        return next(iter(self.probabilities), None)

    def markdown(self):
        """The answer as the app's status text (a Markdown table of every class's probability)."""
        if self.problem:
            return f"**Cannot classify `{self.name}`**: {self.problem}. Try another photo."
        best = self.predicted
        lines = [f"**{best}** ({self.probabilities[best]:.1%}): `{self.name}`, {self.description} "
                 f"({self.seconds * 1000:.0f} ms)", "", "| class | probability |", "|---|---|"]
        lines += [f"| {c} | {p:.4f} |" for c, p in self.probabilities.items()]
        return "\n".join(lines)


def answer(engine, path, name=None):
    """The ``Answer`` for the image file ``path`` (``name``: how to call it, default its file name)."""
    name = name or os.path.basename(os.fspath(path))
    started = time.perf_counter()
    try:
        description = describe_image(path)
    except UnreadableImage as e:
        return Answer(name, problem=e.reason)
    except OSError as e:
        return Answer(name, problem=e.strerror or str(e))
    size = tuple(engine.size)
    x, read, unreadable = load_images([path], size)
    if not read:
        return Answer(name, description, problem=next(iter(unreadable.values())))
    probs = np.asarray(engine.predict(x))[0]
    order = np.argsort(-probs, kind="stable")
    ranked = {engine.classes[i]: float(probs[i]) for i in order}
    if description.split(" ", 1)[0] != f"{size[1]}x{size[0]}":
        description += f", resized to {size[1]}x{size[0]}"
    return Answer(name, description, ranked, np.clip(x[0], 0, 255).astype(np.uint8),
                  seconds=time.perf_counter() - started)
